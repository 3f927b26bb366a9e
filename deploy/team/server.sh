#!/usr/bin/env bash
# A team's tracking setup on one server, as MLflow and Optuna document it for many machines:
#
#   * PostgreSQL (Debian's package: apt-get install postgresql) with two databases, `mlflow`
#     (MLflow's tracking and registry store) and `optuna` (the studies' trials). Two, not
#     one: both keep their schema version in a table named alembic_version.
#   * an MLflow server on that store that proxies artifacts (--artifacts-destination), so
#     workers need no shared filesystem: checkpoints, generators and reports go through it.
#
#   deploy/team/server.sh start DIR     # initdb (first time), start both, write DIR/env
#   deploy/team/server.sh stop DIR
#   deploy/team/server.sh status DIR
#
# Then on every worker (any machine that reaches the ports):
#   source DIR/env                       # MLFLOW_TRACKING_URI, GANBENCH_STUDY_STORAGE
#   ganbench study run gans-created-equal --dataset digits
#
# Settings (environment): GANBENCH_PG_PORT (5433), GANBENCH_MLFLOW_PORT (5000),
# GANBENCH_TEAM_HOST (127.0.0.1: the address both servers listen on; a lab sets the
# server's own), GANBENCH_PG_PASSWORD (default: a random one, kept in DIR/pgpass, mode 600).
# The password is written only to DIR/pgpass and DIR/env (both 600) and to libpq's
# environment of the servers: it appears in no command line, log or printed URL.
# As root, PostgreSQL's programs run as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
pg_port=${GANBENCH_PG_PORT:-5433}
mlflow_port=${GANBENCH_MLFLOW_PORT:-5000}
host=${GANBENCH_TEAM_HOST:-127.0.0.1}
user=ganbench
here=$(cd "$(dirname "$0")" && pwd)
mlflow=${GANBENCH_MLFLOW:-$(command -v mlflow || echo "$here/../../.venv/bin/mlflow")}

pg_bin() {  # Debian keeps the server programs out of PATH, under /usr/lib/postgresql/N/bin
    local found
    found=$(command -v "$1" 2>/dev/null || true)
    if [ -z "$found" ]; then
        found=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
    fi
    [ -n "$found" ] || {
        echo "error: PostgreSQL's $1 is not installed; install it with" \
            "'sudo apt-get install postgresql' (or 'make postgres')" >&2
        exit 1
    }
    echo "$found"
}

as_pg() {  # PostgreSQL refuses to run as root
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pgdata=$dir/pgdata
log=$dir/postgres.log

start() {
    umask 077
    if [ ! -f "$dir/pgpass" ]; then
        password=${GANBENCH_PG_PASSWORD:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
        printf '%s' "$password" > "$dir/pwfile"
        printf '*:*:*:%s:%s\n' "$user" "$password" > "$dir/pgpass"
    fi
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir" "$dir/pwfile" 2>/dev/null || true; fi
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        as_pg "$(pg_bin initdb)" -D "$pgdata" -U "$user" --pwfile="$dir/pwfile" \
            --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log"
    fi
    rm -f "$dir/pwfile"
    if ! as_pg "$(pg_bin pg_ctl)" -D "$pgdata" status >/dev/null 2>&1; then
        as_pg "$(pg_bin pg_ctl)" -D "$pgdata" -l "$log" -w -t 60 start \
            -o "-p $pg_port -c listen_addresses=$host -c unix_socket_directories='$pgdata'" \
            -o "-c max_connections=200" >/dev/null
    fi
    export PGPASSFILE=$dir/pgpass
    for db in mlflow optuna; do
        if ! "$(pg_bin psql)" -h "$host" -p "$pg_port" -U "$user" -d postgres -tAc \
            "select 1 from pg_database where datname='$db'" | grep -q 1; then
            "$(pg_bin createdb)" -h "$host" -p "$pg_port" -U "$user" "$db"
        fi
    done
    password=$(cut -d: -f5 "$dir/pgpass")
    # Workers' environment: the password rides in the URLs here only (mode 600 file).
    cat > "$dir/env" <<EOF
export MLFLOW_TRACKING_URI=http://$host:$mlflow_port
export GANBENCH_STUDY_STORAGE=postgresql://$user:$password@$host:$pg_port/optuna
EOF
    if [ -f "$dir/mlflow.pid" ] && kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null; then
        echo "mlflow server already running (pid $(cat "$dir/mlflow.pid"))"
    else
        mkdir -p "$dir/artifacts"
        # The store URL has no password: libpq reads it from PGPASSFILE.
        nohup "$mlflow" server \
            --backend-store-uri "postgresql://$user@$host:$pg_port/mlflow" \
            --artifacts-destination "$dir/artifacts" \
            --host "$host" --port "$mlflow_port" --workers 2 \
            >"$dir/mlflow.log" 2>&1 &
        echo $! > "$dir/mlflow.pid"
        for _ in $(seq 1 120); do
            if curl -sf "http://$host:$mlflow_port/health" >/dev/null 2>&1; then break; fi
            kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null || {
                echo "error: the mlflow server exited; see $dir/mlflow.log" >&2; exit 1; }
            sleep 0.5
        done
        curl -sf "http://$host:$mlflow_port/health" >/dev/null || {
            echo "error: the mlflow server did not answer in 60 s; see $dir/mlflow.log" >&2
            exit 1; }
    fi
    echo "PostgreSQL on $host:$pg_port (databases mlflow, optuna; user $user; password in $dir/pgpass)"
    echo "MLflow server on http://$host:$mlflow_port (artifacts proxied into $dir/artifacts)"
    echo "workers: source $dir/env"
}

stop() {
    if [ -f "$dir/mlflow.pid" ]; then
        pid=$(cat "$dir/mlflow.pid")
        # the server's gunicorn/uvicorn workers are its children: stop the whole group
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        rm -f "$dir/mlflow.pid"
    fi
    if [ -f "$pgdata/PG_VERSION" ]; then
        as_pg "$(pg_bin pg_ctl)" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    echo "stopped"
}

status() {
    as_pg "$(pg_bin pg_ctl)" -D "$pgdata" status || true
    if [ -f "$dir/mlflow.pid" ] && kill -0 "$(cat "$dir/mlflow.pid")" 2>/dev/null; then
        echo "mlflow server: running (pid $(cat "$dir/mlflow.pid"))"
    else
        echo "mlflow server: not running"
    fi
}

case $action in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac

#!/usr/bin/env bash
# The GPU checks in one go, for a lent CUDA machine that has PyTorch but no network:
# `pytest -m gpu`, then `python -m benchmarks --device cuda --size full`, one section (or
# pair) at a time under a time cap, so a section that fails or runs out of time loses only
# itself; DEVICE_PLAN picks steps (below). Results: benchmarks/results/cuda-full.json|md, copied with the whole log into
# $OUT (or /tmp/device-out) after every step.
#
# Missing packages travel as wheels in .whl/ (Python 3.12, manylinux x86_64; see
# benchmarks/README.md): mlflow (for the resilience section's tracking journal),
# torch-fidelity (the fid section) and what they need that the machine lacks. Wheels in
# .whl/ifold/ replace the machine's own copy only where its version is too old for them.
#
#   bash benchmarks/device.sh            # the whole run, capped at DEVICE_BUDGET_S (450 s)
#   DEVICE_PLAN=gpu-graphs,ceiling,train DEVICE_BUDGET_S=400 bash benchmarks/device.sh
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
BUDGET=${DEVICE_BUDGET_S:-450}
SIZE=${BENCH_SIZE:-full}
DEVICE=${BENCH_DEVICE:-cuda}  # cpu: a dry run of this script on a machine without a GPU
SITE=/tmp/site

save() {
    cp -f benchmarks/results/"$DEVICE-$SIZE".json benchmarks/results/"$DEVICE-$SIZE".md "$OUT"/ 2>/dev/null
    return 0
}

# Runs one step under `timeout`, capped by its own limit and by what is left of BUDGET.
step() {
    local cap=$1 name=$2
    shift 2
    local left=$((BUDGET - SECONDS - 10))
    ((cap > left)) && cap=$left
    if ((cap < 20)); then
        echo "=== $name: SKIPPED, ${left}s of the budget left"
        return 0
    fi
    echo "=== $name (cap ${cap}s, at ${SECONDS}s)"
    local t0=$SECONDS rc=0
    timeout --kill-after=10 "$cap" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "=== $name: TIMED OUT after $((SECONDS - t0))s"
    else
        echo "=== $name: exit $rc after $((SECONDS - t0))s"
    fi
    save
    return 0
}

setup() {
    echo "=== setup"
    nvidia-smi
    $PY --version
    shopt -s nullglob
    local wheels=(.whl/*.whl)
    if ((${#wheels[@]})); then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "${wheels[@]}" || return 1
        # The machine's own copy stays unless it is too old for the carried packages.
        local extra
        extra=$($PY - <<'EOF'
import glob
from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

NEEDED = {
    "typing-extensions": ">=4.16.0",  # pydantic, anyio
    "protobuf": ">=5.0,<8",  # opentelemetry-proto, mlflow
    "anyio": ">=4.1,!=4.15.0,<5",  # fastapi, starlette, mlflow
    "werkzeug": ">=3.1.0",  # flask
}
for wheel in sorted(glob.glob(".whl/ifold/*.whl")):
    name = canonicalize_name(wheel.split("/")[-1].split("-")[0])
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if have is None or have not in SpecifierSet(NEEDED.get(name, "")):
        print(wheel)
    print(f"{name}: machine has {have}, needs {NEEDED.get(name)}", file=__import__("sys").stderr)
EOF
        )
        if [[ -n $extra ]]; then
            echo "replacing the machine's copy: $extra"
            # shellcheck disable=SC2086
            $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$SITE" $extra || return 1
        fi
    fi
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    export PATH=$SITE/bin:$PATH
    # ganbench itself, with its metadata: the plugins are found through entry points.
    $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . || {
        echo "editable install failed; installing a wheel into $SITE"
        rm -rf /tmp/gbwheel
        $PY -m pip wheel -q --no-index --no-deps --no-build-isolation -w /tmp/gbwheel . &&
            $PY -m pip install -q --no-index --no-deps --upgrade --target "$SITE" /tmp/gbwheel/*.whl ||
            return 1
    }
    echo "--- pip check (informational)"
    $PY -m pip check
    $PY - <<'EOF'
import importlib

import torch

from ganbench.plugins import load_registries

gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print("torch", torch.__version__, "|", gpu)
for name in ("mlflow", "torch_fidelity", "onnxruntime", "sqlalchemy", "alembic", "pydantic"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), module.__file__)
    except Exception as exc:  # report and go on: the sections say what they lack
        print(name, "NOT IMPORTABLE:", repr(exc))
import onnxruntime

print("onnxruntime providers", onnxruntime.get_available_providers())
print("architectures", load_registries().architectures.names())
EOF
    return 0
}

# DEVICE_PLAN: comma-separated steps to run (default all): gpu-graphs (the captured-step
# tests), ceiling, train, gpu (the other gpu tests), compile, probe, fid, resilience,
# distributed, shared, zoo, frechet.
PLAN=${DEVICE_PLAN:-all}
want() { [[ $PLAN == all || ,$PLAN, == *,$1,* ]]; }

main() {
    date -u
    setup || {
        echo "=== setup FAILED"
        return 1
    }
    echo "=== setup done at ${SECONDS}s"
    local tests=($PY -m pytest -m gpu -p no:cacheprovider -v -rA -s tests/test_gpu.py)
    want gpu-graphs && step 150 "pytest -m gpu: captured steps" "${tests[@]}" -k "captur"
    local bench=($PY -m benchmarks --device "$DEVICE" --size "$SIZE" --only)
    # GPU sections first; zoo, help and frechet measure the CPU only and come last.
    want ceiling && step 30 "bench ceiling" "${bench[@]}" ceiling
    want train && step 300 "bench train" "${bench[@]}" train
    want gpu && step 150 "pytest -m gpu: the others" "${tests[@]}" -k "not captur"
    want compile && step 420 "bench compile" "${bench[@]}" compile
    want probe && step 60 "bench probe" "${bench[@]}" probe
    want fid && step 180 "bench fid" "${bench[@]}" fid
    want resilience && step 120 "bench resilience" "${bench[@]}" resilience
    want distributed && step 60 "bench distributed" "${bench[@]}" distributed
    # scoring shared by the GPUs against rank 0 alone (all GPUs of the machine)
    want shared && step 60 "shared scoring" $PY -m torch.distributed.run --standalone \
        --nproc-per-node "$(nvidia-smi -L | wc -l)" -m benchmarks.shared_scoring --samples 50000
    want zoo && step 45 "bench zoo,help" "${bench[@]}" zoo,help
    want frechet && step 45 "bench frechet" "${bench[@]}" frechet
    echo "=== done at ${SECONDS}s"
    date -u
    [[ -f benchmarks/results/$DEVICE-$SIZE.md ]] && cat benchmarks/results/"$DEVICE-$SIZE".md
    return 0
}

main 2>&1 | tee "$OUT/log"
save

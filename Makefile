# The two commands of the README. Each creates .venv and installs ganbench (with PyPI's
# torch build) on first use, then does its job; later calls reuse the environment.
PYTHON ?= python3
VENV ?= .venv
## The default suite's pytest-xdist workers: CI's two cores. Whole files go to one worker
## (--dist loadfile), so a file's module fixtures (servers, trained runs) are made once.
TEST_WORKERS ?= 2
BIN := $(VENV)/bin

.PHONY: run test lint slow install chromium postgres team-up team-down clean docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -c "import torch, torchvision, mlflow; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| mlflow', mlflow.__version__)"
	touch $@

install: $(VENV)/.installed

## The main job: DCGAN on the embedded digits dataset, on the CPU, into sqlite:///mlflow.db.
run: install
	$(BIN)/ganbench run dcgan --dataset digits --device cpu

## Headless Chromium (Debian's package) for the test that opens a study's report page;
## installed only when missing (as root, or through sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium with apt-get (the report test opens pages in it)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## PostgreSQL (Debian's package) for the team-setup tests and `make team-up`; installed
## only when missing. Debian keeps its programs under /usr/lib/postgresql/N/bin.
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || { \
	  echo "installing postgresql with apt-get (the team-setup tests start a server)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }

## A team's tracking server in TEAM_DIR: PostgreSQL with MLflow's store and Optuna's studies,
## and an MLflow server proxying artifacts (docs/concepts/team.md). Workers: source TEAM_DIR/env.
TEAM_DIR ?= $(HOME)/ganbench-team
team-up: install postgres
	GANBENCH_MLFLOW=$(BIN)/mlflow deploy/team/server.sh start $(TEAM_DIR)

team-down:
	deploy/team/server.sh stop $(TEAM_DIR)

## Lint, then the default test suite (heavy tests are marked slow/gpu and run on purpose).
test: install chromium postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

slow: install
	$(BIN)/python -m pytest -m slow

## The documentation site (mkdocs-material; the [test] extra has its packages) into site/.
## NO_MKDOCS_2_WARNING: mkdocs-material's banner about MkDocs 2 is not ours to act on.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .tox .pytest_cache .ruff_cache *.egg-info

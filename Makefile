# The two commands of the README. Each creates .venv and installs ganbench (with PyPI's
# torch build) on first use, then does its job; later calls reuse the environment.
PYTHON ?= python3
VENV ?= .venv
## The default suite's pytest-xdist workers: CI's two cores. Whole files go to one worker
## (--dist loadfile), so a file's module fixtures (servers, trained runs) are made once.
TEST_WORKERS ?= 2
BIN := $(VENV)/bin

.PHONY: run test lint slow install chromium clean docs

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

## Lint, then the default test suite (heavy tests are marked slow/gpu and run on purpose).
test: install chromium
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

# The two commands of the README. Each creates .venv and installs ganbench (with PyPI's
# torch build) on first use, then does its job; later calls reuse the environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint slow install clean

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

## Lint, then the default test suite (heavy tests are marked slow/gpu and run on purpose).
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

slow: install
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) .tox .pytest_cache .ruff_cache *.egg-info

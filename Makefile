# Two commands do all set-up on a fresh machine:
#   make repro   install into .venv, then run the whole pipeline (dvc repro) on the embedded demo corpus
#   make test    install into .venv, then run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install repro test bench
install: $(VENV)/.installed

# torch is installed first, pinned (requirements-torch.txt): here that takes the CPU wheel on disk;
# on a GPU machine PyPI's default wheel of the same version, which is the CUDA build.
$(VENV)/.installed: requirements-torch.txt requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-torch.txt
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -c "import torch, transformers, dvc, turnfusion"
	touch $@

repro: install
	dvc repro

test: install
	ruff check src stages tools tests bench examples
	pytest -q

# Two entry points that work on a fresh clone: `make demo` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo report test install
demo: $(VENV)/.installed
	$(BIN)/snakemake --cores all --resources gpu=1 --configfile config/demo.yaml all

report: demo
	$(BIN)/snakemake --configfile config/demo.yaml --report results/report.html

test: $(VENV)/.installed
	$(BIN)/python -m pytest

install: $(VENV)/.installed

# torch first and alone: pip then keeps that build (a CPU one on CPU machines) for the range in pyproject.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[cpu,judges,test]'
	touch $@

# Two entry points that work on a fresh clone: `make demo` and `make test`.
# The target comes first: --configfile and --resources take several values and would swallow it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# A live panel of running jobs (spinner and elapsed time per rule); each job's own progress is in
# its log, results/logs/<rule>[/<key>].log (`tail -f` it).
LOGGER ?= --logger rich

.PHONY: demo report test install workers stop-workers
demo: $(VENV)/.installed
	$(BIN)/snakemake all --cores all --resources gpu=1 --configfile config/demo.yaml $(LOGGER)

report: demo
	$(BIN)/snakemake all --report results/report.html --configfile config/demo.yaml

# The resident workers of this machine (docs/gpu.md, "The GPU worker"): they outlive a run until idle.
workers: $(VENV)/.installed
	$(BIN)/python -m dpo_study.runtime.worker list

stop-workers: $(VENV)/.installed
	$(BIN)/python -m dpo_study.runtime.worker stop

# The suite in TEST_PROCESSES processes (pytest-xdist: `auto` is one per core, at most 4, as the suite
# has few long groups); tests/conftest.py groups the tests that share a study, longest first.
TEST_PROCESSES ?= auto
test: $(VENV)/.installed
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --maxprocesses 4 --dist loadscope --no-loadscope-reorder

install: $(VENV)/.installed

# torch first and alone: pip then keeps that build (a CPU one on CPU machines) for the range in pyproject.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[cpu,judges,test]'
	touch $@

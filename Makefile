# Two commands on a fresh machine:  `make repro` (set up + run the pipeline), `make test`.
VENV ?= .venv
PYTHON ?= python3
# Stages run as `python -m stages.X` under dvc: put the venv first on PATH for them.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0

.PHONY: setup repro test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

repro: setup  ## run the whole pipeline on params.yaml
	dvc repro

test: setup  ## the test suite, tiny configs, no network (what CI runs)
	python -m pytest -q

bench: setup  ## the heavier benchmarks on the reference books; results in metrics/bench/
	python -m pytest -q -m bench -s

clean:
	rm -rf $(VENV)

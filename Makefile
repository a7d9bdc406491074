# Two commands on a fresh machine:  `make repro` (set up + run the pipeline), `make test`.
VENV ?= .venv
PYTHON ?= python3
# Stages run as `python -m stages.X` under dvc: put the venv first on PATH for them.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0

.PHONY: setup repro test bench human-eval-sheet human-eval-score clean

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

bench: setup  ## speed and quality benchmarks, each against a baseline run alongside; results in benchmarks/results/
	python -m benchmarks.train_speed
	python -m benchmarks.export_speed
	python -m benchmarks.cpu_budget --minutes 30

human-eval-sheet: setup  ## blind rating sheet: current model against human_eval.baseline
	python -m stages.human_eval sheet --model models/storyteller --output-dir human_eval/sheet

RATINGS ?= human_eval/ratings/*.csv
human-eval-score: setup  ## aggregate completed sheets: make human-eval-score RATINGS="a.csv b.csv"
	python -m stages.human_eval score --ratings $(RATINGS) --key human_eval/sheet/key.json \
		--output metrics/human_eval.json

clean:
	rm -rf $(VENV)

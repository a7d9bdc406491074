# Two commands on a fresh machine:  `make repro` (set up + run the pipeline), `make test`.
VENV ?= .venv
PYTHON ?= python3
# Stages run as `python -m stages.X` under dvc: put the venv first on PATH for them.
export PATH := $(abspath $(VENV))/bin:$(PATH)
export PYTHONHASHSEED := 0

.PHONY: setup repro test bench queue review human-eval-sheet human-eval-score clean

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

bench: repro  ## speed and quality benchmarks, each against a baseline run alongside; results in benchmarks/results/
	python -m benchmarks.train_speed
	python -m benchmarks.export_speed
	python -m benchmarks.generation_speed
	python -m benchmarks.noop_repro
	python -m pytest -m slow  # a clean clone's full `dvc repro` gives the committed dvc.lock
	python -m benchmarks.cpu_budget --minutes 30

JOBS ?= 2
queue: setup  ## run the queued experiments (`dvc exp run --queue ...`), JOBS at a time
	dvc queue start -j $(JOBS)

BASE ?= main
review: setup  ## params, metrics and plots changed against $(BASE), as Markdown: make review BASE=origin/main
	python -m aitale.review --base $(BASE) --output review.md --plots-dir review-plots

human-eval-sheet: setup  ## blind rating sheet: current model against human_eval.baseline
	python -m stages.human_eval sheet --model models/storyteller --output-dir human_eval/sheet

RATINGS ?= human_eval/ratings/*.csv
human-eval-score: setup  ## aggregate completed sheets: make human-eval-score RATINGS="a.csv b.csv"
	python -m stages.human_eval score --ratings $(RATINGS) --key human_eval/sheet/key.json \
		--output metrics/human_eval.json

clean:
	rm -rf $(VENV)

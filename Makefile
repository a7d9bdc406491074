# Two commands on a fresh machine:  `make repro` (set up + run the pipeline), `make test`.
VENV ?= .venv
PYTHON ?= python3
# Stages run as `python -m stages.X` under dvc: put the venv first on PATH for them.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro check lint deps system-deps test audit bench queue review human-eval-sheet human-eval-score story serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

repro: setup  ## run the whole pipeline on params.yaml
	dvc repro

check: setup  ## validate every section of params.yaml (what `dvc repro` runs first)
	python -m stages.check

lint: setup  ## ruff: lint and formatting (settings in pyproject.toml)
	ruff check .
	ruff format --check .

deps: setup  ## after adding, moving or removing an import: rewrite each stage's code deps in dvc.yaml
	python -m tests.dvc_deps --write

# Debian packages the tests use: a real browser (and its driver) for the story page.
SYSTEM_PACKAGES = chromium chromium-driver
system-deps:  ## install the Debian packages the tests use, where apt-get can (else the page test is skipped)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "missing Debian packages: $$missing (the page test is skipped without them)"; fi

# Two workers (pytest-xdist), each test file on one: most of a test's time is one core's (a stage's
# imports, dvc), so two run side by side on a 2-core machine; tests/conftest.py builds the shared
# reproduced project once for both.
TEST_WORKERS ?= 2
test: lint system-deps  ## lint, then the test suite: tiny configs, no network (what CI runs)
	python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

audit: setup  ## the pinned requirements against known vulnerabilities (pip-audit, online)
	@pip-audit --no-deps --disable-pip --progress-spinner off -r requirements.txt -r requirements-serve.txt \
		> .audit.log 2>&1; status=$$?; cat .audit.log; \
	if grep -q "could not be audited" .audit.log && ! grep -qi "known vulnerabilit" .audit.log; then \
		echo "make audit: pip-audit's vulnerability database (pypi.org's JSON API) cannot be reached from here;" \
			"nothing was checked"; fi; rm -f .audit.log; exit $$status

bench: repro  ## speed and quality benchmarks, each against a baseline run alongside; results in benchmarks/results/
	python -m benchmarks.train_speed
	python -m benchmarks.export_speed
	python -m benchmarks.generation_speed
	python -m benchmarks.noop_repro
	python -m benchmarks.safety_books  # what the screen removes from the ten books, against the old filter
	python -m benchmarks.serve_load  # the story service batched against MAX_BATCH=1, the engine, the cache; default and 124M
	python -m pytest -m slow  # a clean clone's full `dvc repro` gives the committed dvc.lock
	python -m pytest -m container  # the server's image built with podman, run, and asked for a story
	$(MAKE) --no-print-directory books-budget  # 30 minutes of the books recipe

JOBS ?= 2
queue: setup  ## run the queued experiments (`dvc exp run --queue ...`), JOBS at a time
	dvc queue start -j $(JOBS)

BASE ?= main
review: setup  ## params, metrics and plots changed against $(BASE), as Markdown: make review BASE=origin/main
	python -m aitale.reporting.review --base $(BASE) --output review.md --plots-dir review-plots

human-eval-sheet: setup  ## blind rating sheet: current model against human_eval.baseline
	python -m stages.human_eval sheet --model models/storyteller --output-dir human_eval/sheet

RATINGS ?= human_eval/ratings/*.csv
human-eval-score: setup  ## aggregate completed sheets: make human-eval-score RATINGS="a.csv b.csv"
	python -m stages.human_eval score --ratings $(RATINGS) --key human_eval/sheet/key.json \
		--output metrics/human_eval.json

clean:
	rm -rf $(VENV)

serve: setup  ## the story service on http://127.0.0.1:8000 after make repro (python -m aitale.serve --help)
	python -m aitale.serve

TITLE ?= The Brave Little Kettle
AGE ?= 3-5
THEME ?= courage
STYLE ?= bedtime
SEED ?= 7
story: setup  ## a screened story from the command line: make story TITLE="..." AGE=3-5 THEME=courage STYLE=bedtime
	python -m stages.tell --title "$(TITLE)" --age-group $(AGE) --theme $(THEME) --style $(STYLE) --seed $(SEED)

image:  ## the story server's container image, with Docker (after make repro: it bakes in models/onnx and models/safety)
	docker build -t aitale-serve .

image-podman:  ## the same image with podman, where there is no Docker daemon (deploy/build-image.sh says what it needs)
	deploy/build-image.sh

.PHONY: image image-podman

# --- the ten reference books (docs/books.md) ------------------------------------
# From a local mirror of pg{id}.txt files when there is one beside the repository, else from gutenberg.org.
BOOKS_MIRROR ?= $(if $(wildcard ../shared/corpus/gutenberg/MANIFEST.tsv),$(abspath ../shared/corpus/gutenberg),https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt)
# Indian Fairy Tales (7128) is held out whole: no other book shares its tellers or translator.
BOOKS_DATA = -S 'data.gutenberg.books=[28,503,640,2591,5314,7128,11339,17208,22373,29021]' \
	-S 'data.gutenberg.mirror=$(BOOKS_MIRROR)' -S 'prepare.split.holdout_books=[7128]'
# The recipe (docs/books.md): the sweep's best 4 x 256 point (the old settings: dropout 0.1,
# peak learning rate 2e-3, linear decay, an 8,192-token vocabulary) two blocks deeper for a 30-minute
# budget, and the step count books-budget reached in 30 minutes on 2 idle cores.
BOOKS_RECIPE = -S model.vocab_size=8192 -S model.n_layer=6 -S model.dropout=0.1 -S train.scratch.learning_rate=2.0e-3 \
	-S train.scratch.schedule=linear -S train.scratch.epochs=100 -S train.scratch.max_steps=2236 \
	-S train.eval_every=150 -S train.checkpoint_every=150 -S train.sample_every=750 -S train.patience=0
books: setup  ## the ten reference books with the recipe's settings, as one experiment: make books
	dvc exp run $(BOOKS_DATA) $(BOOKS_RECIPE)

# The sweep: queued `dvc exp run` points up to `train`, each trained for SWEEP_MINUTES of CPU time (its
# steps from its own step time, timed first), scored by val bits per byte (benchmarks/books_sweep.py).
SWEEP_MINUTES ?= 3
books-sweep: setup  ## the sweep on the ten books (9 points, ~35 min on 2 idle cores), its table and curves
	python -m benchmarks.books_sweep --minutes $(SWEEP_MINUTES) $(BOOKS_DATA)

BUDGET_MINUTES ?= 30
BUDGET_OLD = benchmarks/results/cpu_budget_old_recipe.json
books-budget: setup  ## the recipe trained for BUDGET_MINUTES on the ten books, scored on test and hold-out
	python -m benchmarks.cpu_budget --minutes $(BUDGET_MINUTES) $(BOOKS_DATA) $(BOOKS_RECIPE) --compare $(BUDGET_OLD)

# The recipe before the sweep (4 blocks), for the old curve beside the new one on the same plot.
books-budget-old: setup  ## the pre-sweep recipe (4 blocks) for BUDGET_MINUTES, beside books-budget's result
	python -m benchmarks.cpu_budget --minutes $(BUDGET_MINUTES) $(BOOKS_DATA) $(BOOKS_RECIPE) -S model.n_layer=4 \
		--output $(BUDGET_OLD) --compare benchmarks/results/cpu_budget.json
	python -m benchmarks.cpu_budget --replot --compare $(BUDGET_OLD)

TABLE_REVS ?= --rev HEAD  # the experiments of a commit; e.g. TABLE_REVS="--rev 7f29501 --rev HEAD"
books-table:  ## the sweep's dvc exp show table (Markdown)
	@dvc exp show --md --no-pager $(TABLE_REVS) --drop '.*' --keep \
		'Experiment|model.vocab_size|model.n_layer|model.n_embd|model.context|model.dropout|train.scratch.learning_rate|train.scratch.schedule|train.scratch.batch_size|train.scratch.max_steps|metrics/train.json:tokens_seen|metrics/train.json:val_bits_per_byte'

.PHONY: books books-sweep books-budget books-budget-old books-table

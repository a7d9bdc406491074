# Two commands on a fresh machine:  `make repro` (set up + run the pipeline), `make test`.
VENV ?= .venv
PYTHON ?= python3
# Stages run as `python -m stages.X` under dvc: put the venv first on PATH for them.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: safety-labels setup repro check lint deps system-deps test audit bench seed-spread queue review human-eval-sheet human-eval-score story serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

repro: setup system-deps  ## run the whole pipeline on params.yaml
	dvc repro

check: setup  ## validate every section of params.yaml (what `dvc repro` runs first)
	python -m stages.check

# Newly labelled passages (jsonl files in LABELS) merged into the set, checked, and the data card's counts redone
# new labellers' files (JSON lines, the card's schema); no comment after the value: its spaces would join it
LABELS ?= data/safety/incoming
safety-labels: setup  ## merge $(LABELS)/*.jsonl into data/safety/passages.jsonl (checked; a label never changes)
	python -m aitale.safety.merge data/safety/passages.jsonl $(sort $(wildcard $(LABELS)/*.jsonl)) --card data/safety/README.md

lint: setup  ## ruff: lint and formatting (settings in pyproject.toml)
	ruff check .
	ruff format --check .

deps: setup  ## after adding, moving or removing an import: rewrite each stage's code deps in dvc.yaml
	python -m tests.dvc_deps --write

# Debian packages the pipeline and the tests use: Link Grammar (its program, library and Python binding) for
# the grammar story metric (evaluate, stages.judge; aitale/evaluation/grammar.py loads Debian's binding into
# the venv), the WordNet database the safety stage expands its concept lexicons with (/usr/share/wordnet), and
# a real browser (and its driver) for the story page's test.
SYSTEM_PACKAGES = link-grammar liblink-grammar5 python3-link-grammar wordnet-base chromium chromium-driver
system-deps:  ## install the Debian packages the pipeline and tests use, where apt-get can (else says what is missing)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "missing Debian packages: $$missing (without link-grammar the grammar metric fails, without" \
		"wordnet-base the safety stage; without chromium the page test is skipped)"; fi

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
	python -m benchmarks.library_prepare  # prepare on the 87-book library: time and byte identity, the ten books alongside
	python -m benchmarks.quality_ladder  # each story metric on tales, shuffled and babbled: the headline's ladder
	python -m benchmarks.serve_load  # the story service batched against MAX_BATCH=1, the engine, the cache; default and 124M
	python -m pytest -m slow  # a clean clone's full `dvc repro` gives the committed dvc.lock
	python -m pytest -m container  # the server's image built with podman, run, and asked for a story
	$(MAKE) --no-print-directory books-budget  # 30 minutes of the books recipe

SEEDS ?= 1 2 3
seed-spread: setup system-deps  ## train and evaluate under SEEDS (queued dvc exp runs): the noise make review marks
	python -m benchmarks.seed_spread --seeds $(SEEDS)

JOBS ?= 2
queue: setup  ## run the queued experiments (`dvc exp run --queue ...`), JOBS at a time
	dvc queue start -j $(JOBS)

BASE ?= main
review: setup  ## params, metrics and plots changed against $(BASE), as Markdown: make review BASE=origin/main
	python -m aitale.reporting.review --base $(BASE) --output review.md --plots-dir review-plots

# More sources for the sheet, each NAME=PATH of JSON-lines stories (id, text, title): real stories, other models' samples.
TEXTS ?=
human-eval-sheet: setup  ## blind rating sheet: the model, human_eval.baseline and TEXTS="real=a.jsonl early=b.jsonl"
	python -m stages.human_eval sheet --model models/storyteller --output-dir human_eval/sheet \
		$(foreach source,$(TEXTS),--texts $(source))

RATINGS ?= human_eval/ratings/*.csv
human-eval-score: setup system-deps  ## scores, raters' alpha, metric correlations: make human-eval-score RATINGS="a.csv b.csv"
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

# --- the 87-book library (docs/library.md) ----------------------------------------------------------
# The library's mirror (../shared/corpus/library): older Gutenberg releases, so the pins below are its files'
# sha256 (from its MANIFEST.tsv), not what gutenberg.org serves today; a corrupt or different mirror fails download.
# ("++" sets the whole mapping: DVC's overrides may not add keys to the default's empty one otherwise.)
LIBRARY_MIRROR ?= $(abspath ../shared/corpus/library)
LIBRARY_PINS = \
	28:6a1264cf1c4ca2ae207b30bdb811b1967703bbfe4b03fcc295fc22ca63fb1a8c \
	503:993bae8d810834166897ae61fa84644f020a8f42f5d3dbaac15341873d252388 \
	640:feba6ba4851d9994c81808498a1720094f39cdc281dda0df2eb6870775393ab9 \
	2591:8ed178dc2ec2badfff7c04bfec378878f794a0980336c7eb19f21f45ccfc0e50 \
	5314:c17c87e68556494314f3539736678b5e6db2b423a9c400d22f9ea45aa7fe3be0 \
	7128:97e474d7a5bfa28c330bf7e5f0284fb1b6e406ecd12b7d286598d7ec2197b7a4 \
	11339:558d9cf81844b51839d0bb10e6b6f0d266906885daa0acbc944776bba42a0226 \
	17208:74c9342cb52c41ff08ebc1c630721c7d47edc3b993fb0cbc5f2ebcb51b6e98d1 \
	22373:d4a6bb95fe4d4b292abeb1dc8b5671182e9b5e6c8e7299e0d3b5056cff7f7618 \
	29021:a285746b402202f1c64af603ff6580edb6c3b86aad03840b175ac633f52e0723 \
	540:8cd1a7810549f0d835068c889cf1a3d30ffd14391342c6054f712f02290415dd \
	7277:f8820efcd3d5ddc527c4a67d48890d501fd27e873505c2b780e09df6338555fa \
	641:64d94d6cce1b31d436a5e7279499d34c5929e84147d310834e2a06852108a284 \
	2435:1735d559df861fd499298e6f360909037703259ebe37d2ada27545f24213ceb2 \
	3282:070ec704aa27581f14d475b15a40ee3f2e3ff702ec43aefca6b81134426f218b \
	27826:acd326c50080b1bd52bd4dbaab9d36f9bbeb0a77ebc6298c260edf67223b9b68 \
	5615:7ddf4492bc8c85e9905778507200a39d90440fa1e35a5d684433a0757f581fd8 \
	6746:afc0d6cec507ca6b8106fd1109390c88e7989a199fa650229a51f7edec7ce747 \
	3454:daf164a2ee74a6a8209fc5e90a729c005bca9a02a618ba7b1a1d39b95ba776f2 \
	36532:618d6384c614b95993e5a364c67fb328c56a3f213a7205cc33baff8af55d1e1d \
	2781:18f8327c5d85c370333bb9b0ba989517821560012db858d1e52df54c9130ea6c \
	236:2f9486eb4776d23baf1064eebb73bb0093b808b13e10516e81e20d1dbe4909c9 \
	1937:b8021147d9ce72b2e0660ab702b786c65ce451a3bd851ead8474953d3c312387 \
	55:18274f31ae11aea07ea9b4f707998636c6f75d784c60d7e8fea0b4d5c2d77af6 \
	11:49a0b2726606e1290ac03a63978fa1dd1bd38a8d805704d98265f393533ea094 \
	12:24bae70935e7fce7be74357779c53861c0cd04b3687f3005c1a8687f2b909988 \
	16:b1e7ade0c061259293c7b07fe3f8ba445b4cf3353e6c657c8cdcd0223bbe0eb8 \
	11757:6b68a616d07e14f0e87ed9b3691bce095a16e2967561020355442967358af98a \
	14838:5f778199e89775d4d7dc76c4924ec8bf58c5805a6c6dbfb8745e945686262f84 \
	4018:7f973bfeb4a058bf7e5bd5d61a8fbd9e2eab4b05667b218f5d282bcd185575f0 \
	54:ed840664386fb16386a7e3e3a69ff6e2a9099a1cbb714a6eed4401205c5deb46 \
	4357:4500f61206a0aee610c3cf0fe1f2bcf135862947e5b35e98164ed659e89be732 \
	1597:694271fa06569b61c5c3041f08cca1d4ff92341ec8a867f6c38b23862edb3adb \
	2557:e155d8a84af0830485c698f0373d9d757b825cb16a4fa80c9a052d3405919b8d \
	20877:2fd0c0651b8ca12b8d2773a24701f407f0a44efb0bdbcab017da25f33569ba9f \
	1825:21fb4f78cba052a90a7f1c8af5c254a96c09b378c1cdac3d227b91d2b38ab215 \
	46866:22ea0d1a12990d269fb5c550eade741171893437b98dbd44f3d707964bfad86c \
	21015:71a2930abc60d90c7dab000f9413aeb930ad33dcafa310e337cb18f5998bcb80 \
	5844:54e36f40d3fb8d3bb2370f3d6d91d5504f28e67153ee2715d3f2a4e8a1468544 \
	14732:6b251e21b1333f5cde6c972cc897e914e549f603ba86a8125635988e50483a8c \
	25301:70167c29f9c8da3370741e675f55008057e9e7b319d21e87459a911eb1dbe118 \
	14375:5a112d1ea6ef16ff89b67efb115565f88241ee7bd26ef389bd67fc9118abeee8 \
	37952:cae4f837a41fc55c332f7baf403da5b7e071d4aaa3bf66b1ccab58ce4dc77599 \
	43596:8e993d697c32c6af516956a8e85b43d44e2e98258fb81e5c519eb5cd780013e7 \
	22816:42198686597991104bde0b4691c3f266923762cf281ce05cf682e940c90ee4c8 \
	15521:2284aefa2bdb378a722408ded6146634f4174424d1b3cc8fbb71f702ae23155b \
	5110:115ce0ed32607c0594755c9c87e96a9eac710b00828d2e4e9056299c58966a26 \
	46951:9ce0f30736b41d823c67d67e5a51c5876588118d979328d422ff6fd766071d9a \
	2441:6a809248562ff656b9fe93c0a0a77cf796627f2801367325802585fc972724dd \
	3074:78b3f169e655721a2acf0297982c73abad065b6900117f2c73e94e8859749de6 \
	12630:a8f8cf297565131be0106a864f4254c69953f4f5859e25b36b3e171c2fb9cd72 \
	14958:2337e5df94e072b603110c0ee214a53243654ff7ce2a27b15a22bbee2e36a0a1 \
	21286:eac7e7abcb330dbce85c7ee22d9f0e6d3fd91399baf62389e415a4270d6044d2 \
	15281:167d1aa48e82163c4c24379eeec98ae9120d558d1cf3713e89020d70988acfb6 \
	15282:fb3df8ba77e139a923e84e3fb39554b7a0a4bf7f92a01a46fa92a8951e0ee71b \
	17807:647ada9d4b723c6018c2a177dfed581540212725feac4db3b2154b07a5137525 \
	42574:6659de15735820744c0ad98197ed4cb2e29cbf595d979ffefa6d04e28304e32d \
	23213:410c58970b1ac0ea83b038bd2f84c934570703954e2e8f0fb15452a3a0b1e2b6 \
	11156:7a9ca3f87f4a16537d03d1b7cd9dc534e8a77dc355df0007735a457318c91341 \
	13087:250fe0ad3d5db943cf7b029eb12dd82ec5ac0b08c3297638b7eeb35455757382 \
	54995:f6bf237ab7be524765ad4e758feef3c8a1431066ff56f346c55cfcc20f1923e3 \
	1332:96bfc8acbad6befd631e03a0eea0f55421a17c348ef9728b027400fe462831c7 \
	5312:96f6ab87d3bbe6d5e8d0003919a1507d1ecf59cd9947cdaab0ebe45a43ab25c0 \
	486:8363483af3b4c13501df617a41321f3535b19372ce63aaa2f6be8bb49ac8bc12 \
	420:ff91e4557b01802320dde8535dd11e0d41652a44e8a542bacfba257f4b2b8be0 \
	485:fbff2bc866dd6d44304c2e9e2540b2c698385de6f61fc48ab5ea07fbc4857541 \
	517:a27996e8e0c6b23c4ce5d232bc426bf9f99a347ea22b1e2b22c1e559aec7b0e5 \
	955:d712dfb36307d04b0cefe0eca7c5c28f52fc89edd49ca8b2dccd1c5a2916c58d \
	14407:13aef1e0fffff0007331c07a9e75211aa96c04b124f22d2c5ffe7a1ddacdd4a8 \
	14872:b802567b25f2a98956cb835f752ac25700561f9cdc9e195e6b5081bf96200d70 \
	14814:f63365986d5128b2c98ffebd2d28f196a88756fd53990b8d56ff219b17ce1091 \
	32202:9ee7fb8ce25f59e5c322d1337155d4199ee67e418031b1250a527267a56c094e \
	37532:addadb41d3c37904216d388504b91286707e7c339783b76460295591699c09a6 \
	9368:cff485731efcb19aecbaee3cfd175254179690c04c36dea72ba4c70361e336da \
	38070:c270f5209d5bb0bd06d418b94c71b3ae88274c9fb88b12174898f905a7ddda88 \
	29939:9b501fc6ad144a62cee5abba79db226a8ec933469a0a9fab22a08110cf231edc \
	11310:4d5c485cc324cc41bcd6dc7a72e5e60be54da01591262082974f5e5b7d52b535 \
	44622:59a052c38d514013dd8dbcf52c7ba752b7e581860d07cd30e920d4d20bc1b2e0 \
	43212:3fa0d6a95e8763ec6403d6b937a5a167fd6328af5be549e6b2c90e41508d4c76 \
	15946:ed26b5c6a1f73aa4b4ea6d0e2d553cc484608180495296be0f916ca870611393 \
	29337:63cfc537f8b446117cab0930d1a38528657cf7a7f9db5c434bf8d02bf7d06494 \
	8653:83194e82b4e554fe43fd390511d0bdb4c790434cd8bcc67c9b38d109589040bb \
	32217:24b166a65d03197733b6186686879152e12be1bd7b42d76f1acc863773fa60a9 \
	956:2e427698e22b9f75433a36b60a8b273bb4a71babf7f4b6ed3ff8cca7ddb917f2 \
	957:be371291f8caa5635055552765bae1ff1850ec9e4e26f25acd660eb4c32b5fd2 \
	289:f875d0ae7c153741c516d4db2f3c1686f8dd79e341ea27dbc2167178a09cd587 \
	7871:cb00eca9d493e178ba2b101181ec1ff02c07baa1a55c69fee134703f611323f1
empty :=
space := $(empty) $(empty)
comma := ,
LIBRARY_BOOKS = [$(subst $(space),$(comma),$(foreach pin,$(LIBRARY_PINS),$(firstword $(subst :, ,$(pin)))))]
LIBRARY_SHA256 = {$(subst @, ,$(subst :,:@",$(subst $(space),"$(comma)@,$(strip $(LIBRARY_PINS))))")}
# Held out whole (leave-one-book-out), one book from each of three groups: a Lang fairy book (The Brown
# Fairy Book), a Burgess bedtime book (The Adventures of Buster Bear) and an Oz novel (Ozma of Oz).
LIBRARY_HOLDOUT = [3282,22816,486]
# Records cut into parts of at most 1,500 words at paragraph breaks; no augmentation (its copies are for
# the 64 custom stories: on 4 M words they would only repeat the books).
LIBRARY_DATA = -S 'data.gutenberg.books=$(LIBRARY_BOOKS)' -S 'data.gutenberg.mirror=$(LIBRARY_MIRROR)' \
	-S '++data.gutenberg.sha256=$(LIBRARY_SHA256)' -S 'prepare.split.holdout_books=$(LIBRARY_HOLDOUT)' \
	-S 'prepare.part_words=1500' -S 'prepare.augment.methods=[]'
# The model and training settings for the library: the sweep's family (dropout 0, peak learning rate 3e-3 with a
# cosine decay, 8,192-token vocabulary; at 3 minutes a point the 3 x 192 model won), a size up for ten times the compute.
LIBRARY_RECIPE ?= -S model.vocab_size=8192 -S model.n_layer=4 -S model.n_embd=256 -S model.n_head=4 -S model.dropout=0.0 \
	-S train.scratch.learning_rate=3.0e-3 -S train.scratch.schedule=cosine
library-mirror:
	@test -f "$(LIBRARY_MIRROR)/MANIFEST.tsv" || { echo "make library: no library mirror at $(LIBRARY_MIRROR)" \
		"(put ../shared/corpus/library beside the repository, or set LIBRARY_MIRROR to a copy of it)"; exit 2; }
library: setup library-mirror  ## the 87-book library, downloaded, prepared and trained on, as one experiment
	dvc exp run $(LIBRARY_DATA) $(LIBRARY_RECIPE)

library-data: setup library-mirror  ## the library downloaded and prepared only (dvc exp run up to prepare)
	dvc exp run prepare $(LIBRARY_DATA)

# The sweep (benchmarks/books_sweep.py --corpus library): eight points at equal operations, queued `dvc exp run`s up to
# train, on the CPU's own kernels in bf16 where it has native bf16 (faster; the figures then hold for this kind of CPU).
# LIBRARY_STEP_SECONDS: the reference point's step on 2 idle cores (timed first when empty; a busy machine's
# timing would shrink every point's budget).
LIBRARY_SWEEP_MINUTES ?= 4
LIBRARY_STEP_SECONDS ?=
LIBRARY_POINTS ?=  # a subset of the points (default all)
library-sweep: setup library-mirror  ## the library sweep (8 points, ~45 min on 2 idle cores), its table and curves
	python -m benchmarks.books_sweep --corpus library --native-bf16 --minutes $(LIBRARY_SWEEP_MINUTES) \
		$(if $(LIBRARY_STEP_SECONDS),--step-seconds $(LIBRARY_STEP_SECONDS)) \
		$(if $(LIBRARY_POINTS),--points $(LIBRARY_POINTS)) $(LIBRARY_DATA)

# The 30 minutes: the recipe trained for BUDGET_MINUTES on the library, scored on test and the three held-out books.
library-budget: setup library-mirror  ## the library recipe for BUDGET_MINUTES, scored on test and the held-out books
	python -m benchmarks.cpu_budget --minutes $(BUDGET_MINUTES) --native-bf16 --mirror $(LIBRARY_MIRROR) \
		$(if $(LIBRARY_STEP_SECONDS),--step-seconds $(LIBRARY_STEP_SECONDS)) $(if $(WORK),--work $(WORK)) \
		--title "the 87-book library" --output benchmarks/results/library_budget.json $(LIBRARY_DATA) $(LIBRARY_RECIPE)

# Control a reader can see (benchmarks/control_library.py): after `make library` the workspace holds the library
# model and its splits; the heads on its trunk and the control grid, 5 stories per condition, with intervals.
LIBRARY_MODEL ?= models/storyteller
LIBRARY_PROCESSED ?= data/processed
CONTROL_ARGS ?=  # e.g. --fine-tune-epochs 3 --work /tmp/library-heads
library-control: setup  ## heads and control gains with intervals on the trained library model
	python -m benchmarks.control_library --model $(LIBRARY_MODEL) --data $(LIBRARY_PROCESSED) --screen models/safety \
		--output benchmarks/results/control_library.json $(CONTROL_ARGS)

.PHONY: library library-data library-mirror library-sweep library-budget library-control

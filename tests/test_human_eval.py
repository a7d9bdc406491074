"""Human evaluation stage: a blind sheet from two tiny real models, rated by two raters and scored."""

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from aitale.data.stories import load_stories
from aitale.evaluation.human import RatingsError, Sample, read_ratings, sheet_html
from aitale.evaluation.ladder import rungs
from aitale.generation.config import generation_config
from aitale.modeling.tokenizer import train_bpe
from aitale.params import GenerateParams, load_section
from stages import human_eval
from tests.support.params import tiny_params
from tests.support.repo import REPO
from tests.support.stages import run_stage

TITLES = ["The Lantern Fox", "The Snow Hare's Secret"]
CRITERIA = [
    "engagement",
    "plot_coherence",
    "character_development",
    "age_appropriateness",
    "educational_value",
    "entertainment_value",
]
COLUMNS = ["sample_id", "title", "story", *CRITERIA, "rater", "comments"]
SHEET_FILES = ["README.md", "key.json", "sheet.csv", "sheet.html"]


def save_tiny_gpt2(folder: Path, tokenizer: PreTrainedTokenizerFast, n_positions: int, n_layer: int, seed: int) -> Path:
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=n_positions,
            n_layer=n_layer,
            n_head=2,
            n_embd=32,
            bos_token_id=eos,
            eos_token_id=eos,
        )
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """Two different tiny GPT-2s, named like the real ones.

    The model has the pipeline's scratch tokenizer (structure tokens, a pad token), the package
    stage's generation_config.json (the settings both models write with) and a context shorter than its
    max_new_tokens; the baseline, like a hub model, has a tokenizer that knows neither, and a longer context.
    """
    root = tmp_path_factory.mktemp("models")
    texts = [story.text for story in load_stories(REPO / "data/stories")]
    tokenizer = train_bpe(texts, 400, 48)
    model = save_tiny_gpt2(root / "storyteller", tokenizer, n_positions=48, n_layer=1, seed=1)
    shipped = load_section(GenerateParams, "generate", REPO / "params.yaml")
    generation_config(
        shipped.model_copy(update={"min_new_tokens": 200, "max_new_tokens": 400}), tokenizer
    ).save_pretrained(model)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False)
    plain = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    baseline = save_tiny_gpt2(root / "age-3-5", plain, n_positions=64, n_layer=2, seed=2)
    return model, baseline


def params(folder: Path, baseline: Path | str, **human_eval) -> Path:
    return tiny_params(
        folder / "params.yaml",
        human_eval={"baseline": str(baseline), "prompts": TITLES, "seed": 3, **human_eval},
    )


def make_sheet(model: Path, output: Path, config: Path, *extra: str):
    """``sheet`` as DVC runs it, on one CPU thread: threads only slow models this small down."""
    command = [
        sys.executable,
        "-m",
        "stages.human_eval",
        "sheet",
        "--model",
        str(model),
        "--output-dir",
        str(output),
        *extra,
        "--config",
        str(config),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def sheet(tmp_path_factory, models):
    model, baseline = models
    root = tmp_path_factory.mktemp("sheet")
    config = params(root, baseline)
    result = make_sheet(model, root / "human", config)
    assert result.returncode == 0, result.stderr
    return root / "human", config, result.stderr


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict[str, str]], bom: bool = False) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(("\ufeff" if bom else "") + buffer.getvalue(), encoding="utf-8")
    return path


def score(files: list[Path], key: Path, output: Path, config: Path):
    return run_stage(
        "human_eval", "score", "--ratings", *map(str, files), "--key", str(key), "--output", str(output), config=config
    )


def test_sheet_is_blind_complete_and_reproducible(sheet, models, tmp_path):
    folder, config, log = sheet
    assert sorted(p.name for p in folder.iterdir()) == SHEET_FILES
    with (folder / "sheet.csv").open(encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == COLUMNS
    rows = read_rows(folder / "sheet.csv")
    key = json.loads((folder / "key.json").read_text())
    assert [r["sample_id"] for r in rows] == ["S01", "S02", "S03", "S04"] == sorted(key)
    assert sorted(r["title"] for r in rows) == sorted(TITLES * 2)
    assert all(r["story"].strip() for r in rows)
    assert all(r[c] == "" for r in rows for c in [*CRITERIA, "rater", "comments"])

    model, baseline = models
    assert sorted(entry["label"] for entry in key.values()) == ["baseline", "baseline", "model", "model"]
    for row in rows:
        entry = key[row["sample_id"]]
        assert entry["title"] == row["title"]
        assert entry["path"] == str(model if entry["label"] == "model" else baseline)
    by_title = {t: {key[r["sample_id"]]["label"]: r["story"] for r in rows if r["title"] == t} for t in TITLES}
    assert all(stories["model"] != stories["baseline"] for stories in by_title.values())

    for name in ("sheet.csv", "sheet.html", "README.md"):
        text = (folder / name).read_text(encoding="utf-8").lower()
        for secret in ("baseline", "storyteller", "age-3-5", str(model.parent).lower()):
            assert secret not in text, (name, secret)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess, so that the float sums run in the same order
    try:  # in-process, to spare a second import of torch
        assert (
            human_eval.main(
                ["sheet", "--model", str(model), "--output-dir", str(tmp_path / "again"), "--config", str(config)]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    for name in SHEET_FILES:  # seeded: the same stories in the same order
        assert (tmp_path / "again" / name).read_bytes() == (folder / name).read_bytes(), name


class FormParser(HTMLParser):
    """Checks nesting and collects the inputs, the stories' text and any external reference."""

    VOID = {"meta", "input", "br", "hr", "img", "link"}

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.inputs: list[dict] = []
        self.buttons = 0
        self.external: list[tuple] = []
        self.stories: dict[str, str] = {}
        self.section: str | None = None
        self.in_story = False
        self.script = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.VOID:
            self.open.append(tag)
        self.external += [(tag, k, v) for k, v in attrs.items() if k in ("src", "href", "action") or tag == "link"]
        if tag == "input":
            self.inputs.append(attrs)
        elif tag == "button":
            self.buttons += 1
        elif tag == "section":
            self.section = attrs["data-sample-id"]
        elif tag == "div" and attrs.get("class") == "story":
            self.in_story = True
            self.stories[self.section] = ""

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()
        if tag == "div":
            self.in_story = False

    def handle_data(self, data):
        if self.in_story:
            self.stories[self.section] += data
        if self.open and self.open[-1] == "script":
            self.script += data


def test_html_form_has_one_rating_input_per_story_and_criterion(sheet):
    folder, _, _ = sheet
    text = (folder / "sheet.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    form = FormParser()
    form.feed(text)
    form.close()
    assert form.open == []  # every element closed, properly nested
    assert form.external == [] and "http" not in text and "url(" not in text  # works offline
    rows = read_rows(folder / "sheet.csv")
    ratings = [i for i in form.inputs if i.get("type") == "number"]
    assert sorted(i["name"] for i in ratings) == sorted(f"{r['sample_id']}.{c}" for r in rows for c in CRITERIA)
    assert all((i["min"], i["max"], i["step"]) == ("1", "5", "1") and "required" in i for i in ratings)
    assert [i["name"] for i in form.inputs if i.get("type") == "text"] == ["rater"]
    assert form.buttons == 1 and "download" in text.lower()
    assert form.stories == {r["sample_id"]: r["story"] for r in rows}  # escaped, and read back exactly
    assert f"const COLUMNS = {json.dumps(COLUMNS)};" in form.script


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the sheet's script")
def test_the_html_download_is_what_score_reads(sheet, tmp_path):
    """The sheet's own CSV writer (run by node), fed an awkward comment, gives a file `score` accepts."""
    folder, config, _ = sheet
    form = FormParser()
    form.feed((folder / "sheet.html").read_text(encoding="utf-8"))
    comment = 'Lovely, but "odd" ending;\nline two – ünïcode'
    rows = [
        [r["sample_id"], r["title"], r["story"], *["4"] * len(CRITERIA), "Cleo", comment]
        for r in read_rows(folder / "sheet.csv")
    ]
    script = form.script + f"\nprocess.stdout.write(ratingsCsv({json.dumps(rows)}));\n"
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, encoding="utf-8", check=True)
    download = tmp_path / "ratings-Cleo.csv"
    download.write_text(result.stdout, encoding="utf-8")
    parsed = read_rows(download)
    assert [list(r.values()) for r in parsed] == rows
    result = score([download], folder / "key.json", tmp_path / "scores.json", config)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "scores.json").read_text())["models"]["model"]["criteria"]["engagement"] == {
        "mean": 4.0,
        "n": 2,
        "std": 0.0,
    }


def completed(folder: Path) -> tuple[list[dict], list[dict]]:
    """Ann rates every story (the model 5, the baseline 2 but 4 for age-appropriateness); Bob only the model's, 4."""
    key = json.loads((folder / "key.json").read_text())
    ann, bob = [], []
    for row in read_rows(folder / "sheet.csv"):
        label = key[row["sample_id"]]["label"]
        scores = {c: "5" if label == "model" else ("4" if c == "age_appropriateness" else "2") for c in CRITERIA}
        ann.append(
            {**row, **scores, "rater": "Ann", "comments": 'Nice, "quiet" tale,\nwith a twist' * (label == "model")}
        )
        if label == "model":
            bob.append({**row, **dict.fromkeys(CRITERIA, "4"), "rater": " Bob ", "comments": ""})
    return ann, bob


def test_score_aggregates_two_raters_per_model_and_criterion(sheet, tmp_path):
    folder, config, _ = sheet
    ann, bob = completed(folder)
    blank = dict.fromkeys(COLUMNS, "")
    files = [
        write_rows(tmp_path / "ann.csv", [ann[0], blank, *ann[1:]]),
        write_rows(tmp_path / "bob.csv", bob, bom=True),
    ]
    result = score(files, folder / "key.json", tmp_path / "metrics/human_eval.json", config)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "metrics/human_eval.json").read_text()
    scores = json.loads(text)
    assert text == json.dumps(scores, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    assert scores["raters"] == 2 and scores["ratings"] == 6 and scores["scale"] == {"min": 1, "max": 5}
    model, baseline = scores["models"]["model"], scores["models"]["baseline"]
    assert (model["raters"], model["samples"], model["samples_rated"]) == (2, 2, 2)
    assert (baseline["raters"], baseline["samples"], baseline["samples_rated"]) == (1, 2, 2)
    assert set(model["criteria"]) == set(CRITERIA)
    for criterion in CRITERIA:  # the model: 5, 5 (Ann) and 4, 4 (Bob)
        assert model["criteria"][criterion] == {"mean": 4.5, "std": round(math.sqrt(1 / 3), 4), "n": 4}
    assert baseline["criteria"]["engagement"] == {"mean": 2.0, "std": 0.0, "n": 2}
    assert baseline["criteria"]["age_appropriateness"] == {"mean": 4.0, "std": 0.0, "n": 2}
    assert model["overall"] == {"mean": 4.5, "std": round(math.sqrt(6 / 23), 4), "n": 24}
    assert scores["difference"]["engagement"] == 2.5 and scores["difference"]["age_appropriateness"] == 0.5

    again = score(files, folder / "key.json", tmp_path / "again.json", config)
    assert again.returncode == 0 and (tmp_path / "again.json").read_text() == text


def _set(row: int, **cells):
    return lambda files: [[{**r, **cells} if i == row else r for i, r in enumerate(files[0])]]


@pytest.mark.parametrize(
    ("mutate", "where", "message"),
    [
        (_set(1, engagement="6"), "ann.csv: row 3", "engagement rating 6 is outside the scale 1..5"),
        (_set(2, plot_coherence="3.5"), "ann.csv: row 4", "plot_coherence rating '3.5' is not a whole number"),
        (_set(0, educational_value="four"), "ann.csv: row 2", "educational_value rating 'four' is not a whole number"),
        (_set(3, entertainment_value=""), "ann.csv: row 5", "missing entertainment_value rating"),
        (_set(1, sample_id="S99"), "ann.csv: row 3", "unknown sample id 'S99'"),
        (_set(2, rater="  "), "ann.csv: row 4", "missing rater name"),
        (lambda files: [files[0] + [files[0][1]]], "ann.csv: row 6", "duplicate: 'Ann' already rated"),
        (lambda files: [files[0][:2], files[0][1:]], "ann-2.csv: row 2", "duplicate: 'Ann' already rated"),
        (lambda files: [[{**r, "rater": ""} for r in files[0]]], "ann.csv: row 5", "missing rater name"),
    ],
    ids=[
        "out-of-range",
        "fraction",
        "word",
        "empty",
        "unknown-id",
        "no-rater",
        "duplicate",
        "duplicate-across-files",
        "no-rater-anywhere",
    ],
)
def test_malformed_ratings_are_rejected_with_file_and_row(sheet, tmp_path, mutate, where, message):
    folder, config, _ = sheet
    ann, _ = completed(folder)
    files = [write_rows(tmp_path / name, rows) for name, rows in zip(["ann.csv", "ann-2.csv"], mutate([ann]))]
    result = score(files, folder / "key.json", tmp_path / "human_eval.json", config)
    assert result.returncode == 2
    assert f"{where}: {message}" in result.stderr
    assert not (tmp_path / "human_eval.json").exists()


def test_a_row_reports_every_problem_at_once_and_a_title_from_another_sheet(tmp_path):
    key = {"S01": {"label": "model", "path": "m", "title": "The Lantern Fox"}}
    row = {
        **dict.fromkeys(COLUMNS, "3"),
        "sample_id": "S01",
        "title": "The Owl's {Party}",
        "engagement": "9",
        "plot_coherence": "",
        "rater": "",
    }
    ratings = write_rows(tmp_path / "ratings.csv", [row])
    with pytest.raises(RatingsError) as error:
        read_ratings([ratings], key, 1, 5)
    where = f"{ratings}: row 2"
    assert str(error.value).splitlines() == [
        "4 problem(s) in the ratings:",
        f"  {where}: title \"The Owl's {{Party}}\" is not S01's title 'The Lantern Fox' (ratings of another sheet?)",
        f"  {where}: missing rater name",
        f"  {where}: engagement rating 9 is outside the scale 1..5",
        f"  {where}: missing plot_coherence rating",
    ]


def test_html_text_cannot_break_out_of_its_element():
    story = 'He said "</div></script><script>alert(1)</script>" & left.\n\nThe end.'
    text = sheet_html([Sample("S01", "Fox & <Owl> 'n' \"Hare\"", story, "model", "m")], 1, 5)
    form = FormParser()
    form.feed(text)
    form.close()
    assert form.open == [] and text.count("<script>") == 1
    assert form.stories == {"S01": story}
    assert 'data-title="Fox &amp; &lt;Owl&gt; &#39;n&#39; &#34;Hare&#34;"' in text


def test_the_blank_sheet_and_a_wrong_header_are_rejected(sheet, tmp_path):
    folder, config, _ = sheet
    result = score([folder / "sheet.csv"], folder / "key.json", tmp_path / "out.json", config)
    assert result.returncode == 2 and f"{folder / 'sheet.csv'}: row 2: missing engagement rating" in result.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,title,story,engagement\nS01,x,y,3\n", encoding="utf-8")
    result = score([bad], folder / "key.json", tmp_path / "out.json", config)
    assert result.returncode == 2 and f"{bad}: row 1: missing column(s) plot_coherence" in result.stderr
    assert not (tmp_path / "out.json").exists()


def test_sheet_refuses_bad_params_a_missing_baseline_and_foreign_files(models, tmp_path):
    model, baseline = models
    result = make_sheet(model, tmp_path / "out", params(tmp_path, baseline, scale_min=5, scale_max=5))
    assert result.returncode == 2 and "scale_min must be below scale_max" in result.stderr
    result = make_sheet(model, tmp_path / "out", params(tmp_path, tmp_path / "no-such-model"))
    assert result.returncode == 2 and "no-such-model: not a model folder" in result.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    (tmp_path / "out/ratings-ann.csv").write_text("precious")
    result = make_sheet(model, tmp_path / "out", params(tmp_path, tmp_path / "elsewhere"), "--baseline", str(baseline))
    assert result.returncode == 2 and "ratings-ann.csv" in result.stderr
    assert (tmp_path / "out/ratings-ann.csv").read_text() == "precious"


def test_help_lists_both_commands_and_the_params():
    result = run_stage("human_eval", "--help")
    assert result.returncode == 0 and "sheet" in result.stdout and "score" in result.stdout
    for command, option in [("sheet", "--output-dir"), ("score", "--ratings")]:
        result = run_stage("human_eval", command, "--help")
        assert result.returncode == 0 and option in result.stdout and "--config" in result.stdout
        assert "--baseline VALUE" in result.stdout and "(now: 5)" in result.stdout  # human_eval.scale_max


# --- many sources, agreement and the metrics against the ratings --------------------------------------------


@pytest.fixture(scope="module")
def big_sheet(tmp_path_factory, models):
    """The two models' 4 stories, 20 real stories and 20 babbles of other real stories: 44, from four sources."""
    model, baseline = models
    root = tmp_path_factory.mktemp("big-sheet")
    stories = load_stories(REPO / "data/stories")
    real = [{"id": s.id, "text": s.text, "title": s.title} for s in stories[:20]]
    babble = [{"id": s.id, "text": rungs(s.text, 1)["babble"], "title": s.title} for s in stories[20:40]]
    for name, rows in (("real", real), ("babble", babble)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = params(root, baseline)
    texts = ["--texts", f"real={root / 'real.jsonl'}", "--texts", f"babble={root / 'babble.jsonl'}"]
    result = make_sheet(model, root / "human", config, *texts)
    assert result.returncode == 0, result.stderr
    return root / "human", config, {r["text"] for r in real}


def test_a_sheet_holds_real_stories_and_several_sources_blind(big_sheet):
    folder, _, real = big_sheet
    rows = read_rows(folder / "sheet.csv")
    key = json.loads((folder / "key.json").read_text())
    assert len(rows) == 44 and [r["sample_id"] for r in rows] == sorted(key) and rows[-1]["sample_id"] == "S44"
    labels = [key[r["sample_id"]]["label"] for r in rows]
    assert sorted(set(labels)) == ["babble", "baseline", "model", "real"]
    assert labels.count("real") == 20 and labels.count("model") == 2
    assert labels[:20] != sorted(labels[:20]) and labels != ["model", "model"] + labels[2:]  # shuffled
    assert {r["story"] for r in rows if key[r["sample_id"]]["label"] == "real"} == real
    for name in ("sheet.csv", "sheet.html", "README.md"):
        text = (folder / name).read_text(encoding="utf-8")
        assert "babble" not in text and "real.jsonl" not in text, name


def test_sources_need_their_own_names_and_readable_files(models, tmp_path):
    model, baseline = models
    config = params(tmp_path, baseline)
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    result = make_sheet(model, tmp_path / "out", config, "--texts", f"bad={tmp_path / 'bad.jsonl'}")
    assert result.returncode == 2 and "line 1: missing text" in result.stderr
    (tmp_path / "ok.jsonl").write_text('{"id": 1, "text": "A fox ran home."}\n')
    result = make_sheet(model, tmp_path / "out", config, "--texts", f"model={tmp_path / 'ok.jsonl'}")
    assert result.returncode == 2 and "its own name" in result.stderr
    assert not (tmp_path / "out").exists()


def three_raters(folder: Path) -> list[list[dict]]:
    """Real stories rated 4-5, the rest 1-2; the raters differ by a point here and there."""
    key = json.loads((folder / "key.json").read_text())
    raters = []
    for k, name in enumerate(("Ann", "Bob", "Cy")):
        rows = []
        for i, row in enumerate(read_rows(folder / "sheet.csv")):
            good = key[row["sample_id"]]["label"] == "real"
            base = 4 if good else 1
            scores = {c: str(base + (i + j + k) % 2) for j, c in enumerate(CRITERIA)}
            rows.append({**row, **scores, "rater": name})
        raters.append(rows)
    return raters


def test_score_reports_the_raters_agreement_and_each_metric_against_the_mean_rating(big_sheet, tmp_path):
    import krippendorff
    import numpy as np
    from scipy.stats import spearmanr

    from aitale.evaluation.metrics import HEADLINE, screenless_metrics

    folder, config, _ = big_sheet
    raters = three_raters(folder)
    files = [write_rows(tmp_path / f"r{k}.csv", rows) for k, rows in enumerate(raters)]
    result = score(files, folder / "key.json", tmp_path / "human_eval.json", config)
    assert result.returncode == 0, result.stderr
    found = json.loads((tmp_path / "human_eval.json").read_text())
    assert set(found["models"]) == {"model", "baseline", "real", "babble"}
    assert found["models"]["real"]["overall"]["mean"] > 4 > 2 > found["models"]["babble"]["overall"]["mean"]

    agreement = found["agreement"]
    assert agreement["raters"] == 3
    for c in CRITERIA:  # the reference implementation, on the raters x stories grid
        grid = np.array([[float(row[c]) for row in rows] for rows in raters])
        expected = krippendorff.alpha(
            reliability_data=grid, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5]
        )
        assert agreement["alpha"][c] == pytest.approx(expected, abs=1e-4)
    assert agreement["alpha"]["overall"] > 0.8  # the real stories apart from the rest, by every rater

    correlation = found["metric_correlation"]
    assert correlation["stories"] == 44
    stories = {row["sample_id"]: row["story"] for row in read_rows(folder / "sheet.csv")}
    ids = sorted(stories)
    mean = [np.mean([np.mean([float(rows[i][c]) for c in CRITERIA]) for rows in raters]) for i in range(44)]
    for name, metric in screenless_metrics().items():
        entry = correlation["spearman"][name]
        assert entry["headline"] == (name in HEADLINE)
        rho = spearmanr([metric(stories[i]) for i in ids], mean).statistic
        assert entry["rho"] == pytest.approx(rho, abs=1e-4)
    for name in HEADLINE:  # every headline metric puts the real stories above the babble, as the raters do
        assert correlation["spearman"][name]["rho"] > 0.6, name


def test_agreement_is_one_when_raters_agree_and_null_for_a_single_rater(big_sheet, tmp_path):
    folder, config, _ = big_sheet
    same = three_raters(folder)[0]
    files = [
        write_rows(tmp_path / "ann.csv", same),
        write_rows(tmp_path / "bob.csv", [{**r, "rater": "Bob"} for r in same]),
    ]
    result = score(files, folder / "key.json", tmp_path / "two.json", config)
    assert result.returncode == 0, result.stderr
    assert set(json.loads((tmp_path / "two.json").read_text())["agreement"]["alpha"].values()) == {1.0}
    result = score(files[:1], folder / "key.json", tmp_path / "one.json", config)
    alpha = json.loads((tmp_path / "one.json").read_text())["agreement"]["alpha"]
    assert result.returncode == 0 and set(alpha.values()) == {None}

"""The classify stage's heads and baselines, and the control-accuracy judgement built on them."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from aitale.evaluation import control
from aitale.io import read_jsonl
from aitale.modeling.baseline import Baseline, Example, SavedBaseline, Task, baseline_to_json
from aitale.modeling.classify import EMOTIONS, Judge
from tests.support.params import tiny_params
from tests.support.repo import REPO
from tests.support.stages import run_stage

TASKS = ("theme", "style", "age", "emotion")


def classify(model: Path, data: Path, out: Path, **classify_params) -> dict:
    """The classify stage on ``model`` and the tiny data's splits, heads in ``out/heads``; its metrics."""
    processed = data / "processed"
    result = run_stage(
        "classify",
        "--model",
        str(model),
        "--train",
        str(processed / "train.jsonl"),
        "--heldout",
        str(processed / "val.jsonl"),
        str(processed / "test.jsonl"),
        "--emotions",
        str(REPO / "data/emotion/passages.jsonl"),
        "--output-dir",
        str(out / "heads"),
        "--metrics",
        str(out / "classify.json"),
        config=tiny_params(out / "params.yaml", classify=classify_params),
    )
    assert result.returncode == 0, result.stderr
    return json.loads((out / "classify.json").read_text())


@pytest.fixture(scope="module")
def classified(scratch_run, tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("classify")
    return out, classify(scratch_run[0] / "weights/storyteller", tiny_data, out)


@pytest.fixture(scope="module")
def fine_tuned(scratch_run, tiny_data, tmp_path_factory):
    """Heads whose trunks are also fine-tuned (two epochs at a rate the tiny trunk moves at), run twice."""
    runs = [tmp_path_factory.mktemp("fine_tuned") for _ in range(2)]
    settings = {"fine_tune_epochs": 2, "fine_tune_learning_rate": 0.001}
    return [(out, classify(scratch_run[0] / "weights/storyteller", tiny_data, out, **settings)) for out in runs]


@pytest.mark.parametrize("task", TASKS)
def test_each_head_loads_as_a_sequence_classifier_and_predicts(classified, task):
    out, metrics = classified
    folder = out / "heads" / task
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    labels = metrics["heads"][task]["labels"]
    assert list(model.config.id2label.values()) == labels and len(labels) >= 3
    with torch.no_grad():
        logits = model(
            **tokenizer(["Once upon a time a fox was afraid of the dark.<|endoftext|>"], return_tensors="pt")
        ).logits
    assert logits.shape == (1, len(labels)) and torch.isfinite(logits).all()
    assert (model.config.problem_type == "multi_label_classification") == (task == "theme")


def test_heads_and_baselines_are_scored_on_held_out_stories(classified, tiny_data):
    _, metrics = classified
    heldout = {r["id"] for name in ("val", "test") for r in read_jsonl(tiny_data / f"processed/{name}.jsonl")}
    for task in TASKS:
        scores = metrics["heads"][task]
        assert 0 <= scores["head"]["macro_f1"] <= 1 and 0 <= scores["baseline"]["macro_f1"] <= 1
        assert scores["chosen"] in ("head", "baseline") and scores["heldout_passages"] > 0
        assert scores["head_kind"] == "probe" and scores["head"] == scores["probe"] and scores["fine_tuned"] is None
    assert metrics["heads"]["emotion"]["labels"] == list(EMOTIONS)
    assert metrics["heads"]["style"]["heldout_stories"] == sum(1 for i in heldout if i.startswith("ai-tale/"))


def test_a_saved_baseline_scores_as_the_fitted_one():
    rows = read_jsonl(REPO / "data/emotion/passages.jsonl")[:300]
    examples = [Example(r["text"], (r["emotion"],), r["story"]) for r in rows]
    for task in (Task("emotion", EMOTIONS), Task("pair", ("calm", "joy"), multi_label=True)):
        fitted = Baseline(task, seed=0).fit(examples)
        saved = SavedBaseline(json.loads(json.dumps(baseline_to_json(fitted))))
        texts = [r["text"] for r in read_jsonl(REPO / "data/emotion/passages.jsonl")[300:340]]
        np.testing.assert_allclose(saved.probabilities(texts), fitted.probabilities(texts), atol=1e-6)


def test_the_control_metric_prefers_a_story_that_matches_its_request(classified, tiny_data):
    """Each held-out story answers a request for its own labels "with control tokens", and the next story
    answers it "without": the gain is positive, by the best judges and by those the model taught nothing."""
    out, _ = classified
    themes = ["kindness", "courage"]
    stories = [
        r
        for name in ("val", "test")
        for r in read_jsonl(tiny_data / f"processed/{name}.jsonl")
        if r["source"] == "custom" and set(r["themes"]) & set(themes)
    ]
    requests = [
        control.Request(r["title"], r["age_group"], r["style"], next(t for t in themes if t in r["themes"]), 0)
        for r in stories
    ]
    texts = [r["text"] for r in stories]
    judges = control.load_judges(out / "heads")
    result = control.report(requests, texts, texts[1:] + texts[:1], judges, themes, 1000, 0)
    assert result["gain_points"] == result["by_judge"]["best"]["gain_points"]
    for name in ("best", "independent"):
        figures = result["by_judge"][name]
        assert sum(figures["gain_points"].values()) > 0, figures
        for d in control.DIMENSIONS:
            assert figures["gain_ci_low"][d] <= figures["gain_points"][d] <= figures["gain_ci_high"][d]
    assert result["by_judge"]["independent"]["judges"] == {
        "age": "reading_grade",
        "style": "baseline",
        "theme": "baseline",
    }
    # the same stories the other way round: asked-for labels now fit the unconditioned side
    reverse = control.report(requests, texts[1:] + texts[:1], texts, judges, themes, 1000, 0)
    assert sum(reverse["gain_points"].values()) < 0


def test_scores_from_known_features_equal_the_saved_heads_own_probabilities(classified, tiny_data):
    """The stage scores held-out passages from the trunk features it already has; the saved head,
    run whole as users run it, must give the same probabilities."""
    from aitale.modeling.heads import feature_probabilities, features, head_probabilities

    out, _ = classified
    texts = [record["text"][:400] for record in read_jsonl(tiny_data / "processed/test.jsonl")][:4]
    for task in ("theme", "style"):
        folder = out / "heads" / task
        head = AutoModelForSequenceClassification.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        whole = head_probabilities(head, tokenizer, texts, 64)
        from_features = feature_probabilities(head, features(head, tokenizer, texts, 64))
        assert whole.shape == (len(texts), head.config.num_labels)
        np.testing.assert_allclose(from_features, whole, atol=1e-5)


def heldout_story_f1(folder: Path, tiny_data: Path, task: str) -> float:
    """Macro-F1 per held-out custom story of the saved head in ``folder``, run as the evaluation runs it."""
    from aitale.modeling.baseline import macro_f1

    judge = Judge(folder, use="head")
    stories = [
        r
        for name in ("val", "test")
        for r in read_jsonl(tiny_data / f"processed/{name}.jsonl")
        if r["source"] == "custom" and not r["augmented"]
    ]
    label = {"style": "style", "age": "age_group"}[task]
    targets = np.array([judge.task.labels.index(r[label]) for r in stories])
    predicted = judge.story_probabilities([r["text"] for r in stories]).argmax(1)
    return macro_f1(judge.task, targets, predicted)


@pytest.mark.parametrize("task", ["style", "age"])
def test_the_better_of_probe_and_fine_tuned_head_is_kept_and_both_are_recorded(fine_tuned, tiny_data, task):
    out, metrics = fine_tuned[0]
    scores = metrics["heads"][task]
    probe, tuned = scores["probe"]["macro_f1_stories"], scores["fine_tuned"]["macro_f1_stories"]
    assert probe != tuned  # the fine-tuning moved the trunk
    assert scores["head_kind"] == ("fine_tuned" if tuned > probe else "probe")
    assert scores["head"] == scores[scores["head_kind"]]
    assert json.loads((out / "heads" / task / "judge.json").read_text())["head_kind"] == scores["head_kind"]
    # the saved head is the kept one: it scores the held-out stories as recorded
    assert heldout_story_f1(out / "heads" / task, tiny_data, task) == pytest.approx(max(probe, tuned), abs=1e-4)


def test_fine_tuned_heads_are_the_same_bytes_on_every_run(fine_tuned):
    (first, metrics), (second, _) = fine_tuned
    assert metrics["fine_tune_epochs"] == 2
    assert (first / "classify.json").read_bytes() == (second / "classify.json").read_bytes()
    for task in TASKS:
        weights = [out / "heads" / task / "model.safetensors" for out in (first, second)]
        assert weights[0].read_bytes() == weights[1].read_bytes(), task

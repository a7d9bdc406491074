"""The classify stage's heads and baselines, and the control-accuracy judgement built on them."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from aitale.evaluation import control
from aitale.io import read_jsonl
from aitale.modeling.baseline import Baseline, Example, SavedBaseline, Task, baseline_to_json
from aitale.modeling.classify import EMOTIONS, Judge
from tests.helpers import REPO, run_stage, tiny_params

TASKS = ("theme", "style", "age", "emotion")


@pytest.fixture(scope="module")
def classified(scratch_run, tiny_data, tmp_path_factory):
    root, _ = scratch_run
    out = tmp_path_factory.mktemp("classify")
    processed = tiny_data / "processed"
    result = run_stage(
        "classify",
        "--model",
        str(root / "weights/storyteller"),
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
        config=tiny_params(out / "params.yaml"),
    )
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "classify.json").read_text())


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
    """Held-out stories judged against their own labels score higher than against other labels."""
    out, _ = classified
    judges = {d: Judge(out / "heads" / d) for d in control.DIMENSIONS}
    stories = [
        r
        for name in ("val", "test")
        for r in read_jsonl(tiny_data / f"processed/{name}.jsonl")
        if r["source"] == "custom" and set(r["themes"]) & {"kindness", "courage"}
    ]
    themes = ["kindness", "courage"]
    texts = [r["text"] for r in stories]
    found = control.judged(judges, texts, themes)

    def requests(swap: bool) -> list[control.Request]:
        def other(value, values):
            return values[(values.index(value) + 1) % len(values)] if swap else value

        return [
            control.Request(
                r["title"],
                other(r["age_group"], ["3-5", "6-8", "9-12"]),
                other(r["style"], ["fairy_tale", "fable", "bedtime"]),
                other(next(t for t in themes if t in r["themes"]), themes),
                0,
            )
            for r in stories
        ]

    matching, mismatched = control.accuracy(requests(False), found), control.accuracy(requests(True), found)
    assert sum(matching.values()) > sum(mismatched.values())


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

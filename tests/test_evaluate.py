"""The evaluate stage, in the spec's command shape, on a tiny trained model."""

import csv
import json

import pytest

from tests.conftest import run_stage, tiny_params

NARRATIVE = {"coherence", "arc_consistency", "character_consistency", "age_appropriateness", "creativity"}


@pytest.fixture(scope="module")
def evaluated(scratch_run, tiny_data, tmp_path_factory):
    root, _ = scratch_run
    out = tmp_path_factory.mktemp("evaluation")
    config = tiny_params(out / "params.yaml", evaluate={"sample_prompts": ["The Tiny Test", "A Second Tale"],
                                                        "samples_per_prompt": 1})
    result = run_stage("evaluate", "--model-path", str(root / "weights/storyteller"),
                       "--test-dataset", str(tiny_data / "processed/test.jsonl"), "--output-dir", str(out / "results"),
                       config=config)
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "results/eval.json").read_text())


def test_language_model_metrics(evaluated):
    _, metrics = evaluated
    assert 1.0 < metrics["perplexity"] < 400  # better than uniform over the 400-token vocabulary
    assert 0 < metrics["bits_per_byte"] < 8
    assert set(metrics["by_collection"]) == {"ai-tale"}
    assert metrics["by_collection"]["ai-tale"]["bits_per_byte"] == metrics["bits_per_byte"]
    for name in ("bleu", "rouge1", "rouge2", "rougeL"):
        assert 0 <= metrics[name] <= 100


def test_narrative_metrics_and_their_validation_are_recorded(evaluated):
    _, metrics = evaluated
    for group in ("samples", "continuations", "references"):
        assert set(metrics["narrative"][group]) == NARRATIVE
    assert set(metrics["validation"]) <= NARRATIVE and metrics["validation"]["coherence"] >= 0.5
    assert metrics["stories"]["samples"] == 2


def test_timings_are_kept_apart_from_the_metrics(evaluated):
    out, metrics = evaluated
    speed = json.loads((out / "results/speed.json").read_text())
    assert speed["eval_seconds"] > 0
    assert set(speed["seconds"]) == {"perplexity", "continuations", "samples", "narrative_metrics"}
    assert "eval_seconds" not in metrics  # eval.json is the same on every run (see test_generation_is_seeded)


def test_samples_and_plot_data_are_written(evaluated):
    out, _ = evaluated
    markdown = (out / "results/samples.md").read_text()
    assert "The Tiny Test" in markdown and "| coherence |" in markdown
    assert "<h2>2. A Second Tale</h2>" in (out / "results/samples.html").read_text()
    with open(out / "results/plots/bpb_by_collection.csv") as handle:
        assert [row["collection"] for row in csv.DictReader(handle)] == ["ai-tale"]
    with open(out / "results/plots/arc_samples.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 10


def test_generation_is_seeded(evaluated, scratch_run, tiny_data):
    out, _ = evaluated
    root, _ = scratch_run
    result = run_stage("evaluate", "--model-path", str(root / "weights/storyteller"),
                       "--test-dataset", str(tiny_data / "processed/test.jsonl"), "--output-dir", str(out / "again"),
                       config=out / "params.yaml")
    assert result.returncode == 0, result.stderr
    for name in ("samples.md", "samples.html", "eval.json", "plots/arc_samples.csv"):
        assert (out / "again" / name).read_bytes() == (out / "results" / name).read_bytes(), name

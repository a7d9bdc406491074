"""The evaluate stage, in the spec's command shape, on a tiny trained model."""

import csv
import json

import pytest

from tests.support.params import tiny_params
from tests.support.repo import REPO
from tests.support.stages import run_stage

NARRATIVE = {"coherence", "arc_consistency", "character_consistency", "age_appropriateness", "creativity", "grammar"}


def evaluate(run, data, screen, config, output_dir):
    """The evaluate stage on the tiny scratch run's model and the tiny data's test and hold-out splits."""
    return run_stage(
        "evaluate",
        "--model-path",
        str(run / "weights/storyteller"),
        "--test-dataset",
        str(data / "processed/test.jsonl"),
        "--screen",
        str(screen),
        "--labelled",
        str(REPO / "data/safety/passages.jsonl"),
        "--holdout",
        str(data / "processed/holdout.jsonl"),
        "--output-dir",
        str(output_dir),
        config=config,
    )


@pytest.fixture(scope="module")
def evaluated(scratch_run, tiny_data, screen_dir, tmp_path_factory):
    root, _ = scratch_run
    out = tmp_path_factory.mktemp("evaluation")
    config = tiny_params(
        out / "params.yaml", evaluate={"sample_prompts": ["The Tiny Test", "A Second Tale"], "samples_per_prompt": 1}
    )
    result = evaluate(root, tiny_data, screen_dir, config, out / "results")
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


def test_bits_per_byte_out_of_collection_beside_the_in_split_figures(evaluated, tiny_data):
    _, metrics = evaluated
    held_out = (tiny_data / "processed/holdout.jsonl").read_text().splitlines()
    holdout = metrics["holdout"]
    assert holdout["stories"] == len(held_out) > 0
    assert 0 < holdout["bits_per_byte"] < 8 and holdout["tokens"] > 0
    assert set(metrics["holdout_by_collection"]) == {"ai-tale"}
    assert holdout["bits_per_byte"] != metrics["bits_per_byte"]  # other stories than the test split's


def test_narrative_metrics_and_their_validation_are_recorded(evaluated):
    _, metrics = evaluated
    for group in ("samples", "continuations", "references"):
        assert set(metrics["narrative"][group]) == NARRATIVE
    assert set(metrics["validation"]) <= NARRATIVE and metrics["validation"]["coherence"] >= 0.5
    assert metrics["stories"]["samples"] == 2


def test_the_share_of_samples_the_screen_passes_is_reported_per_age_group(evaluated):
    _, metrics = evaluated
    rates = metrics["screen_pass_rate"]
    assert set(rates) == {"3-5", "6-8", "9-12"} and all(r in (0.0, 0.5, 1.0) for r in rates.values())


def test_timings_are_kept_apart_from_the_metrics(evaluated):
    out, metrics = evaluated
    speed = json.loads((out / "results/speed.json").read_text())
    assert speed["eval_seconds"] > 0
    assert set(speed["seconds"]) == {"perplexity", "continuations", "samples", "control", "narrative_metrics"}
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


def test_generation_is_seeded(evaluated, scratch_run, tiny_data, screen_dir):
    out, _ = evaluated
    root, _ = scratch_run
    result = evaluate(root, tiny_data, screen_dir, out / "params.yaml", out / "again")
    assert result.returncode == 0, result.stderr
    for name in ("samples.md", "samples.html", "eval.json", "plots/arc_samples.csv"):
        assert (out / "again" / name).read_bytes() == (out / "results" / name).read_bytes(), name


def test_bleu_and_rouge_give_the_values_worked_out_by_hand():
    from aitale.evaluation.overlap import overlap_scores

    # The reference is cut to the hypothesis's 8 words: "... over the lazy" against "... over the dog".
    # n-gram precisions 7/8, 6/7, 5/6, 4/5, equal lengths: BLEU = (7/8 * 6/7 * 5/6 * 4/5) ** (1/4) = 0.5 ** 0.25.
    scores = overlap_scores(["the quick brown fox jumps over the dog"], ["the quick brown fox jumps over the lazy dog"])
    assert scores["bleu"] == pytest.approx(100 * 0.5**0.25, abs=1e-3)
    assert scores["rouge1"] == pytest.approx(100 * 7 / 8, abs=1e-3)  # 7 of 8 words shared, both ways
    assert scores["rouge2"] == pytest.approx(100 * 6 / 7, abs=1e-3)  # 6 of 7 bigrams
    assert scores["rougeL"] == pytest.approx(100 * 7 / 8, abs=1e-3)  # the longest common subsequence: 7 words
    same = "once upon a time there lived a fox"
    assert overlap_scores([same], [same]) == {"bleu": 100.0, "rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}

"""benchmarks/control_library.py end to end on the tiny DVC project: heads on its model's trunk, and the control
grid with intervals under both sets of judges, as the lead runs it on the library model."""

import json
import subprocess
import sys

import pytest

from aitale.evaluation.control import DIMENSIONS
from aitale.io import read_jsonl
from tests.support.repo import REPO

HEADS = ("theme", "style", "age", "emotion")


def benchmark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.control_library", *args], cwd=REPO, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def measured(dvc_project, tmp_path_factory):
    out = tmp_path_factory.mktemp("control_library")
    result = benchmark(
        "--model",
        str(dvc_project / "models/storyteller"),
        "--data",
        str(dvc_project / "data/processed"),
        "--screen",
        str(dvc_project / "models/safety"),
        "--config",
        str(dvc_project / "params.yaml"),
        "--stories-per-condition",
        "1",
        "--output",
        str(out / "control_library.json"),
        "--work",
        str(out / "work"),
    )
    assert result.returncode == 0, result.stderr
    return out, json.loads((out / "control_library.json").read_text())


def test_each_gain_has_its_interval_under_both_sets_of_judges(measured):
    _, result = measured
    assert result["stories"] == 3 * 3 * 4 and result["stories_per_condition"] == 1
    for name in ("best", "independent"):
        figures = result["by_judge"][name]
        for d in DIMENSIONS:
            gain = 100 * (figures["conditioned"][d] - figures["unconditioned"][d])
            assert figures["gain_points"][d] == pytest.approx(gain, abs=0.06)
            assert figures["gain_ci_low"][d] <= figures["gain_points"][d] <= figures["gain_ci_high"][d]
            assert figures["gain_ci_high"][d] - figures["gain_ci_low"][d] > 0  # 36 stories: never certain
    for key in ("gain_points", "gain_ci_low", "gain_ci_high", "judges"):
        assert result[key] == result["by_judge"]["best"][key]
    assert result["by_judge"]["independent"]["judges"] == {
        "age": "reading_grade",
        "style": "baseline",
        "theme": "baseline",
    }
    grades = result["conditioned"]["reading_grade"]
    assert result["reading_grade_in_age_order"] == (grades["3-5"] < grades["6-8"] < grades["9-12"])
    assert result["machine"]["cpu_model"] and result["seconds"]["classify"] > 0 and result["seconds"]["control"] > 0


def test_the_grid_and_its_judges_are_the_evaluate_stages(measured, dvc_project):
    """On the pipeline's params, one story per condition: the stories, judges and figures of the pipeline's own
    control section in metrics/eval.json, so the library model's figures compare with the default model's."""
    _, result = measured
    evaluated = json.loads((dvc_project / "metrics/eval.json").read_text())["control"]
    for key in ("conditioned", "unconditioned", "by_judge", "reading_grade_in_age_order", "screen_pass_rate"):
        assert result[key] == evaluated[key], key


def test_each_head_is_scored_against_its_baseline_on_the_held_out_stories(measured, dvc_project):
    out, result = measured
    pipeline = json.loads((dvc_project / "metrics/classify.json").read_text())["heads"]
    heldout = {
        r["id"]
        for name in ("val", "test")
        for r in read_jsonl(dvc_project / f"data/processed/{name}.jsonl")
        if r["source"] == "custom" and not r["augmented"]
    }
    for name in HEADS:
        head = result["heads"][name]
        assert 0 <= head["head_f1"] <= 1 and 0 <= head["baseline_f1"] <= 1
        # the pipeline's classify stage on the same trunk and stories gave the same scores
        assert head["head_f1"] == pipeline[name]["head"][head["f1"]]
        assert head["baseline_f1"] == pipeline[name]["baseline"][head["f1"]]
        assert head["judge"] == ("head" if head["head_f1"] >= head["baseline_f1"] else "baseline")
    assert result["heads"]["style"]["heldout_stories"] == len(heldout)
    assert (out / "work/classifiers/theme/judge.json").is_file()


def test_a_missing_input_is_named_before_any_work(tmp_path, dvc_project):
    result = benchmark(
        "--model",
        str(tmp_path / "no-model"),
        "--data",
        str(dvc_project / "data/processed"),
        "--screen",
        str(dvc_project / "models/safety"),
        "--output",
        str(tmp_path / "out.json"),
    )
    assert result.returncode != 0 and str(tmp_path / "no-model" / "config.json") in result.stderr
    assert not (tmp_path / "out.json").exists()

"""benchmarks/seed_spread.py on the tiny project: two train seeds as queued `dvc exp run`s, and the spread review reads.

Marked slow (two tiny trainings and evaluations): `make bench` runs it.
"""

import json
import subprocess
import sys

import pytest

from tests.support.projects import clone_project
from tests.support.repo import REPO
from tests.support.shell import sh

pytestmark = pytest.mark.slow


def test_the_spread_of_each_metric_over_two_train_seeds(dvc_project, tmp_path):
    repo = clone_project(dvc_project, tmp_path / "repo")
    output = tmp_path / "seed_spread.json"
    command = [sys.executable, "-m", "benchmarks.seed_spread", "--repo", str(repo), "--seeds", "5", "6"]
    result = subprocess.run([*command, "--output", str(output)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    found = json.loads(output.read_text())
    assert found["seeds"] == [5, 6]
    spread = found["spread"]
    key = "metrics/eval.json:narrative.samples.coherence"
    assert key in spread and spread[key] == pytest.approx(abs(found["values"][key][0] - found["values"][key][1]))
    assert spread["metrics/train.json:val_loss"] > 0  # another seed, another model
    data = [value for key, value in spread.items() if key.startswith("metrics/data.json:")]
    assert data and not any(data)  # the data does not depend on the train seed
    assert sh("git", "status", "--porcelain", cwd=repo) == ""  # queued runs: the workspace is left alone
    names = sh("dvc", "exp", "ls", "--name-only", cwd=repo).split()
    assert {"seed-spread-5", "seed-spread-6"} <= set(names)

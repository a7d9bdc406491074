"""The real `dvc` CLI on a copy of this repository: repro, no-op repro, and what an edit reruns."""

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from aitale.io import read_jsonl
from tests.conftest import REPO, tiny_params

ALL_STAGES = {"download", "prepare", "tokenizer", "train", "specialise@age-3-5", "stylise@fable", "package", "evaluate",
              "export", "distill"}


def sh(*command: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def edit_params(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git + DVC repository holding this project's files (what a clone gets), on tiny params."""
    root = tmp_path_factory.mktemp("clone") / "ai-tale"
    files = sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO).splitlines()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("dvclive/", "metrics/")) and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    tiny_params(root / "params.yaml")
    sh("git", "init", "-q", cwd=root)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project", cwd=root)
    return root


def test_repro_builds_everything_then_nothing(repo):
    first = sh("dvc", "repro", cwd=repo)
    assert ran(first) == ALL_STAGES
    assert (repo / "models/storyteller/model.safetensors").exists()
    assert (repo / "models/specialised/age-3-5/generation_config.json").exists()
    assert (repo / "metrics/data.json").exists() and (repo / "metrics/train.json").exists()
    assert (repo / "metrics/eval.json").exists() and (repo / "evaluation_results/samples.html").exists()
    assert ran(sh("dvc", "repro", cwd=repo)) == set()
    assert "up to date" in sh("dvc", "status", cwd=repo)


def test_train_edit_reruns_training_and_after_only(repo):
    sh("dvc", "repro", cwd=repo)
    edit_params(repo, "train", "seed", 7)
    assert ran(sh("dvc", "repro", cwd=repo)) == {"train", "specialise@age-3-5", "stylise@fable", "package", "evaluate",
                                                 "export", "distill"}


def test_generate_edit_reruns_packaging_and_evaluation_only(repo):
    sh("dvc", "repro", cwd=repo)
    edit_params(repo, "generate", "temperature", 0.7)
    assert ran(sh("dvc", "repro", cwd=repo)) == {"package", "evaluate", "export"}


def test_export_edit_reruns_export_only(repo):
    sh("dvc", "repro", cwd=repo)
    edit_params(repo, "export", "latency_tokens", 3)
    assert ran(sh("dvc", "repro", cwd=repo)) == {"export"}


def test_evaluate_edit_reruns_evaluation_only(repo):
    sh("dvc", "repro", cwd=repo)
    edit_params(repo, "evaluate", "prompt_fraction", 0.5)
    assert ran(sh("dvc", "repro", cwd=repo)) == {"evaluate"}


def test_prepare_edit_reruns_everything_downstream(repo):
    sh("dvc", "repro", cwd=repo)
    edit_params(repo, "prepare", "seed", 7)
    assert ran(sh("dvc", "repro", cwd=repo)) == ALL_STAGES - {"download"}


def test_adding_a_group_adds_a_stage(repo):
    sh("dvc", "repro", cwd=repo)
    val_themes = Counter(t for r in read_jsonl(repo / "data/processed/val.jsonl") for t in r["themes"])
    theme = val_themes.most_common(1)[0][0]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["specialise"]["groups"][f"theme-{theme}"] = {"theme": theme}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(sh("dvc", "repro", cwd=repo)) == {f"specialise@theme-{theme}", "package"}
    assert (repo / f"models/specialised/theme-{theme}/config.json").exists()

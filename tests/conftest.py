"""Fixtures built once per test session: the reference corpus, tiny prepared data, a tiny model and project."""

import json
import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

import stages  # noqa: F401  (before anything loads torch: the tests compute as a stage does, aitale/machine.py)
from tests.support.params import recording_params_reads, tiny_params
from tests.support.projects import make_project
from tests.support.repo import REPO, reference_corpus_dir
from tests.support.shell import git_commit, sh
from tests.support.stages import run_stage, train


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = reference_corpus_dir()
    if not (path / "MANIFEST.tsv").exists():
        pytest.fail(f"reference corpus not found at {path}; set AITALE_CORPUS to its folder")
    return path


@pytest.fixture(scope="session")
def screen_dir(tmp_path_factory) -> Path:
    """The content screen the safety stage builds from the repository's labels and params."""
    root = tmp_path_factory.mktemp("safety")
    result = run_stage(
        "safety",
        "--passages",
        str(REPO / "data/safety/passages.jsonl"),
        "--rules",
        str(REPO / "data/safety/rules.yaml"),
        "--concepts",
        str(REPO / "data/safety/concepts.yaml"),
        "--stories",
        str(REPO / "data/stories"),
        "--output-dir",
        str(root / "screen"),
        "--metrics",
        str(root / "safety.json"),
        "--plots-dir",
        str(root / "plots"),
    )
    assert result.returncode == 0, result.stderr
    return root / "screen"


@pytest.fixture(scope="session")
def content_screen(screen_dir):
    from aitale.safety import load_screen

    return load_screen(screen_dir)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, screen_dir) -> Path:
    """The custom stories prepared once: ``<dir>/processed/{train,val,test}.jsonl`` and ``<dir>/tokenizer``."""
    root = tmp_path_factory.mktemp("tiny_data")
    config = tiny_params(root / "params.yaml")
    for stage, args in [
        ("download", ["--output-dir", str(root / "raw")]),
        (
            "prepare",
            [
                "--stories",
                str(REPO / "data/stories"),
                "--books",
                str(root / "raw"),
                "--screen",
                str(screen_dir),
                "--output-dir",
                str(root / "processed"),
                "--metrics",
                str(root / "data.json"),
                "--books-table",
                str(root / "data_books.json"),
                "--groups",
                str(root / "data_groups.json"),
            ],
        ),
        ("tokenizer", ["--train", str(root / "processed/train.jsonl"), "--output-dir", str(root / "tokenizer")]),
    ]:
        result = run_stage(stage, *args, config=config)
        assert result.returncode == 0, result.stderr
    return root


@pytest.fixture(scope="session")
def scratch_run(tmp_path_factory, tiny_data):
    """A tiny scratch model trained once: ``<root>/weights/storyteller``, its metrics and DVCLive logs."""
    root = tmp_path_factory.mktemp("scratch")
    config = tiny_params(root / "params.yaml")
    result = train(root, tiny_data, config)
    assert result.returncode == 0, result.stderr
    return root, config


@pytest.fixture(scope="session")
def dvc_project(tmp_path_factory) -> Path:
    """This project on tiny params after ``dvc repro``, with dvc.lock and the metrics committed.

    Built once for the whole run: under pytest-xdist (``make test`` runs two workers) the first worker
    to ask builds it under a file lock in the folder the workers share, and the others wait and reuse
    it. Tests read it, or clone it (``clone_project``) to change anything."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder; each worker's own is a folder inside it
    folder = shared / "dvc-project"
    with FileLock(str(shared / "dvc-project.lock")):
        if not (folder / "built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker's build that failed half-way
            folder.mkdir()
            root = make_project(folder / "ai-tale")
            # every stage records the params keys it reads, for tests/test_dvc_deps.py
            sh("dvc", "repro", cwd=root, env=recording_params_reads(folder / "params-reads"))
            git_commit(root, "dvc repro")
            (folder / "built").touch()
    return folder / "ai-tale"


@pytest.fixture(scope="session")
def params_reads(dvc_project) -> list[dict]:
    """What each stage process of the ``dvc_project`` run read: ``{"argv": [...], "reads": [dotted keys]}``."""
    return [json.loads(path.read_text()) for path in sorted((dvc_project.parent / "params-reads").glob("*.json"))]

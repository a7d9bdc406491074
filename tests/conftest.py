import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def reference_corpus_dir() -> Path:
    """The ten reference Gutenberg books, laid beside the repository as ``../shared/corpus/gutenberg``."""
    return Path(os.environ.get("AITALE_CORPUS", REPO.parent / "shared" / "corpus" / "gutenberg"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    path = reference_corpus_dir()
    if not (path / "MANIFEST.tsv").exists():
        pytest.fail(f"reference corpus not found at {path}; set AITALE_CORPUS to its folder")
    return path


def run_stage(stage: str, *args: str, config: Path | None = None) -> "subprocess.CompletedProcess[str]":
    """Run ``python -m stages.<stage>`` from the repository root, as DVC would."""
    command = [sys.executable, "-m", f"stages.{stage}", *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def manifest(corpus: Path) -> dict[int, dict[str, str]]:
    lines = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return {int(row.split("\t")[0]): dict(zip(header, row.split("\t"))) for row in lines[1:]}


TINY = {
    "model": {"vocab_size": 400, "context": 64, "n_layer": 1, "n_head": 2, "n_embd": 32},
    "train": {"eval_every": 3, "checkpoint_every": 2, "sample_every": 4, "sample_prompts": ["The Tiny Test"],
              "scratch": {"batch_size": 8, "epochs": 1, "max_steps": 6, "block_size": 64, "warmup_steps": 1}},
    "specialise": {"epochs": 1, "groups": {"age-3-5": {"age_group": "3-5"}}, "styles": {"fable": {"style": "fable"}}},
    "generate": {"min_new_tokens": 5, "max_new_tokens": 20},
    "evaluate": {"sample_prompts": ["The Tiny Test"], "samples_per_prompt": 1},
    "export": {"latency_contexts": [32], "latency_tokens": 4, "throughput_batch": 2, "max_bpb_stories": 2},
    "distill": {"n_layer": 1, "n_head": 2, "n_embd": 16, "epochs": 1, "batch_size": 64},
}


REPLACED = {"groups", "styles"}  # lists of models: a test's entries replace the repository's


def merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and key in base and key not in REPLACED
        merged[key] = merge(base[key], value) if nested else value
    return merged


def tiny_params(path: Path, **sections: dict) -> Path:
    """The repository's params.yaml shrunk to a model that trains in seconds, plus ``sections`` changes."""
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    path.write_text(yaml.safe_dump(merge(params, sections), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The custom stories prepared once: ``<dir>/processed/{train,val,test}.jsonl`` and ``<dir>/tokenizer``."""
    root = tmp_path_factory.mktemp("tiny_data")
    config = tiny_params(root / "params.yaml")
    for stage, args in [
        ("download", ["--output-dir", str(root / "raw")]),
        ("prepare", ["--stories", str(REPO / "data/stories"), "--books", str(root / "raw"),
                     "--output-dir", str(root / "processed"), "--metrics", str(root / "data.json")]),
        ("tokenizer", ["--train", str(root / "processed/train.jsonl"), "--output-dir", str(root / "tokenizer")]),
    ]:
        result = run_stage(stage, *args, config=config)
        assert result.returncode == 0, result.stderr
    return root


def train(root: Path, data: Path, config: Path, tokenizer: Path | None = None):
    return run_stage(
        "train", "--tokenizer", str(tokenizer or data / "tokenizer"),
        "--train", str(data / "processed/train.jsonl"), "--val", str(data / "processed/val.jsonl"),
        "--output-dir", str(root / "weights/storyteller"), "--checkpoints", str(root / "checkpoints"),
        "--live", str(root / "live"), "--speed", str(root / "speed"), "--metrics", str(root / "metrics/train.json"),
        config=config,
    )


@pytest.fixture(scope="session")
def scratch_run(tmp_path_factory, tiny_data):
    """A tiny scratch model trained once: ``<root>/weights/storyteller``, its metrics and DVCLive logs."""
    root = tmp_path_factory.mktemp("scratch")
    config = tiny_params(root / "params.yaml")
    result = train(root, tiny_data, config)
    assert result.returncode == 0, result.stderr
    return root, config


def sh(*command: str, cwd: Path) -> str:
    """Run a command (``dvc``, ``git``) with this interpreter's environment first on PATH; fail on error."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def downstream(repo: Path, stages: set[str]) -> set[str]:
    """``stages`` and every stage that depends on them, directly or not, from ``dvc dag``."""
    edges = re.findall(r'"([^"]+)" -> "([^"]+)"', sh("dvc", "dag", "--dot", cwd=repo))
    reached, frontier = set(stages), list(stages)
    while frontier:
        stage = frontier.pop()
        for before, after in edges:
            if before == stage and after not in reached:
                reached.add(after)
                frontier.append(after)
    return reached


def git_commit(repo: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.name=AI Tale tests", "-c", "user.email=tests@ai-tale.invalid", "commit", "-qm", message,
       cwd=repo)


def make_project(root: Path, **sections: dict) -> Path:
    """What a clone of this repository holds (files git tracks, no outputs), as a new git repo on tiny params."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("dvclive/", "metrics/")) and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    tiny_params(root / "params.yaml", **sections)
    sh("git", "init", "-q", "-b", "main", cwd=root)
    git_commit(root, "AI Tale on tiny params")
    return root


@pytest.fixture(scope="session")
def dvc_project(tmp_path_factory) -> Path:
    """This project on tiny params after ``dvc repro``, with dvc.lock and the metrics committed."""
    root = make_project(tmp_path_factory.mktemp("project") / "ai-tale")
    sh("dvc", "repro", cwd=root)
    git_commit(root, "dvc repro")
    return root


def clone_project(source: Path, dest: Path) -> Path:
    """A git clone of ``source`` sharing its DVC cache, with the outputs checked out: a workspace in seconds."""
    sh("git", "clone", "-q", str(source), str(dest), cwd=dest.parent)
    sh("dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache"), cwd=dest)
    sh("dvc", "checkout", "-q", cwd=dest)
    return dest

"""Temporary DVC projects: a fresh one on tiny params, a clone sharing its cache, and what a repro ran."""

import functools
import re
import shutil
import subprocess
from pathlib import Path

from tests.support.params import tiny_params
from tests.support.repo import REPO
from tests.support.shell import git_commit, sh


def ran(output: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def downstream(repo: Path, stages: set[str]) -> set[str]:
    """``stages`` and every stage that depends on them, directly or not, from ``dvc dag``."""
    edges = dag_edges(repo, (repo / "dvc.yaml").read_text(), (repo / "params.yaml").read_text())
    reached, frontier = set(stages), list(stages)
    while frontier:
        stage = frontier.pop()
        for before, after in edges:
            if before == stage and after not in reached:
                reached.add(after)
                frontier.append(after)
    return reached


@functools.cache
def dag_edges(repo: Path, dvc_yaml: str, params: str) -> list[tuple[str, str]]:
    """The edges of ``dvc dag`` (each call starts dvc: cached per pipeline and params text)."""
    return re.findall(r'"([^"]+)" -> "([^"]+)"', sh("dvc", "dag", "--dot", cwd=repo))


def make_project(root: Path, **sections: dict) -> Path:
    """What a clone of this repository holds (files git tracks, no outputs), as a new git repo on tiny params."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    # the real project's results stay behind: a tiny project has its own metrics, and no seed spread of its own
    for name in files:
        outputs = ("dvclive/", "metrics/", "benchmarks/results/")
        if (REPO / name).is_file() and not name.startswith(outputs) and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    tiny_params(root / "params.yaml", **sections)
    sh("git", "init", "-q", "-b", "main", cwd=root)
    git_commit(root, "AI Tale on tiny params")
    return root


def clone_project(source: Path, dest: Path) -> Path:
    """A git clone of ``source`` sharing its DVC cache, with the outputs checked out: a workspace in seconds."""
    sh("git", "clone", "-q", str(source), str(dest), cwd=dest.parent)
    sh("dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache"), cwd=dest)
    sh("dvc", "checkout", "-q", cwd=dest)
    return dest

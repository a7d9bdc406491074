"""DVC experiments on this pipeline: `dvc exp run -S`, a queued sweep run by detached workers, and a pipeline that
needs no file outside git and DVC (queued runs execute in temporary copies holding only those).

The first two tests run on clones of the shared ``dvc_project`` (tiny params, reproduced once per session); their
parameter values are used nowhere else in the suite, so DVC's run-cache, shared through the project's cache, cannot
turn a run into a restore.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.support.projects import clone_project, downstream, ran
from tests.support.repo import REPO
from tests.support.shell import sh

SEED = 1234  # train.seed of the workspace experiment
LEARNING_RATES = ("0.001", "0.003")  # train.scratch.learning_rate of the queued sweep
QUEUE_TIMEOUT_S = 900


def run(*command: str, cwd: Path) -> "subprocess.CompletedProcess[str]":
    """``sh`` without the assertion: the same environment (the venv first on PATH, as the Makefile exports)."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def experiments(repo: Path) -> dict[str, dict]:
    """``dvc exp show --json``: {experiment name: {"params", "metrics", "state"}} for the experiments of HEAD."""
    result = run("dvc", "exp", "show", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    head = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    found = {}
    for row in rows:
        if row["rev"] != head:
            continue
        for exp in row.get("experiments") or []:
            rev = exp["revs"][0]
            data = rev.get("data") or {}
            found[rev["name"]] = {
                "params": data.get("params", {}).get("params.yaml", {}).get("data", {}),
                "metrics": {path: m.get("data", {}) for path, m in data.get("metrics", {}).items()},
                "state": (exp.get("executor") or {}).get("state"),
            }
    return found


def metrics_of(repo: Path) -> dict[str, dict]:
    return {str(p.relative_to(repo)): json.loads(p.read_text()) for p in sorted((repo / "metrics").rglob("*.json"))}


def test_exp_run_with_a_train_param_reruns_training_and_after(dvc_project, tmp_path):
    repo = clone_project(dvc_project, tmp_path / "ai-tale")
    baseline = metrics_of(repo)

    output = sh("dvc", "exp", "run", "-n", "seed-exp", "-S", f"train.seed={SEED}", cwd=repo)

    assert ran(output) == downstream(repo, {"train"}) | {"check"}, output
    exp = experiments(repo)["seed-exp"]
    assert exp["params"]["train"]["seed"] == SEED
    train, evaluation = exp["metrics"]["metrics/train.json"], exp["metrics"]["metrics/eval.json"]
    assert isinstance(train["val_loss"], float) and train["val_loss"] != baseline["metrics/train.json"]["val_loss"]
    assert isinstance(evaluation["perplexity"], float)
    assert evaluation["perplexity"] != baseline["metrics/eval.json"]["perplexity"]
    # The workspace holds the experiment's results, consistent with its dvc.lock ...
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"] == SEED
    assert metrics_of(repo)["metrics/train.json"] == train
    assert "up to date" in sh("dvc", "status", cwd=repo)
    # ... and `dvc exp diff` shows what changed against the baseline commit.
    result = run("dvc", "exp", "diff", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    diff = json.loads(result.stdout)
    assert diff["params"]["params.yaml"]["train.seed"]["new"] == SEED
    assert diff["metrics"]["metrics/train.json"]["val_loss"]["old"] == baseline["metrics/train.json"]["val_loss"]


def queue_status(repo: Path) -> tuple[dict[str, str], int]:
    """``dvc queue status``: {experiment name: Queued | Running | Success | Failed}, and the active workers."""
    output = sh("dvc", "queue", "status", cwd=repo)
    tasks = dict(re.findall(r"^\w+\s+(\S+)\s.*\s(Queued|Running|Success|Failed)\s*$", output, re.MULTILINE))
    workers = re.search(r"Worker status: (\d+) active", output)
    return tasks, int(workers.group(1)) if workers else 0


def wait_for_queue(repo: Path, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        tasks, _ = queue_status(repo)
        if not any(state in ("Queued", "Running") for state in tasks.values()):
            return tasks
        assert time.monotonic() < deadline, f"queue still busy after {timeout_s}s: {tasks}"
        time.sleep(5)


def stop_workers(repo: Path) -> None:
    """Kill any task still running and stop the workers; wait until none is left."""
    run("dvc", "queue", "stop", "--kill", cwd=repo)
    deadline = time.monotonic() + 60
    while queue_status(repo)[1] and time.monotonic() < deadline:
        time.sleep(2)
    assert queue_status(repo)[1] == 0, "dvc queue workers still running after `dvc queue stop --kill`"


def test_queued_learning_rate_sweep(dvc_project, tmp_path):
    """A 2-point learning-rate sweep, queued and run by two detached workers in clean temporary copies.

    The sweep targets the train stage: comparing learning rates is read off the broad model's val loss, and
    running specialise, package, evaluate, export and distill per point would add minutes without exercising
    the queue any further (the first test runs them under `dvc exp run`). The winner then goes through the
    whole pipeline with `dvc exp apply <name>` and `dvc repro`.
    """
    repo = clone_project(dvc_project, tmp_path / "ai-tale")
    params_before, metrics_before = (repo / "params.yaml").read_text(), metrics_of(repo)

    sh(
        "dvc",
        "exp",
        "run",
        "--queue",
        "-S",
        f"train.scratch.learning_rate={','.join(LEARNING_RATES)}",
        "train",
        cwd=repo,
    )
    try:
        queued, _ = queue_status(repo)
        assert len(queued) == 2 and set(queued.values()) == {"Queued"}, queued
        # Workers are spawned as `dvc exp queue-worker` found on PATH and inherit this environment, so the
        # stages' `python` is the venv's (sh puts it first on PATH, as the Makefile does).
        sh("dvc", "queue", "start", "-j", "2", cwd=repo)
        tasks = wait_for_queue(repo, QUEUE_TIMEOUT_S)
        logs = {name: run("dvc", "queue", "logs", name, cwd=repo).stdout for name in tasks}
        assert set(tasks.values()) == {"Success"}, "\n\n".join(f"{n}: {s}\n{logs[n]}" for n, s in tasks.items())
    finally:
        stop_workers(repo)

    # each point trained (not restored from the run-cache) in a temporary copy, after the params check (its
    # output is not cached: a clean copy runs it again)
    for log in logs.values():
        assert "Running stage 'train'" in log and ran(log) in ({"train"}, {"check", "train"}), log
    exps = experiments(repo)
    assert set(tasks) <= set(exps), exps.keys()
    sweep = {str(exps[name]["params"]["train"]["scratch"]["learning_rate"]): exps[name] for name in tasks}
    assert sorted(map(float, sweep)) == sorted(map(float, LEARNING_RATES))
    val_losses = {lr: exp["metrics"]["metrics/train.json"]["val_loss"] for lr, exp in sweep.items()}
    assert all(isinstance(v, float) for v in val_losses.values()) and len(set(val_losses.values())) == 2, val_losses
    assert all(exp["state"] == "success" for exp in sweep.values())
    # Queued runs leave the workspace alone.
    assert (repo / "params.yaml").read_text() == params_before and metrics_of(repo) == metrics_before


def visible_files(repo: Path) -> set[str]:
    """The files git carries: tracked, and untracked but not ignored (a queued experiment copies committed and
    staged files only: `git add` new files before `dvc exp run --queue`)."""
    return set(sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=repo).splitlines())


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def test_the_pipeline_needs_nothing_outside_git_and_dvc():
    """Every dependency of every stage of this repository is in git or produced by a stage, and no folder
    dependency holds more: dvc.lock counted no file that a clean copy (a clone, the temporary copy of a queued
    experiment) lacks, such as the weights of a group since removed from params.yaml."""
    from dvc.repo import Repo

    files = visible_files(REPO)
    with Repo(str(REPO)) as dvc:
        stages = list(dvc.index.stages)
        deps = {s.name: sorted({d.def_path for d in s.deps}) for s in stages}
        commands = {s.name: s.cmd if isinstance(s.cmd, str) else " ".join(s.cmd) for s in stages}
        produced = [o.def_path for s in stages for o in s.outs]

    def provided(path: str) -> bool:
        return any(under(f, path) for f in files) or any(under(path, o) or under(o, path) for o in produced)

    missing = [f"{stage}: {path}" for stage, paths in deps.items() for path in paths if not provided(path)]
    missing += [
        f"{stage}: {module} (its command)"
        for stage, command in commands.items()
        for module in re.findall(r"python -m ([\w.]+)", command)
        if f"{module.replace('.', '/')}.py" not in files
    ]
    assert not missing, f"neither in git nor produced by a stage: {missing}"

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"] if (REPO / "dvc.lock").exists() else {}
    counts = {o["path"]: o.get("nfiles", 1) for entry in lock.values() for o in entry.get("outs", [])}
    folder_outs = {o["path"] for entry in lock.values() for o in entry.get("outs", []) if "nfiles" in o}
    stale = []
    for stage, entry in lock.items():
        for dep in entry.get("deps", []):
            path, nfiles = dep["path"], dep.get("nfiles")
            inner = [o for o in produced if under(o, path)]
            if nfiles is None or any(o not in counts for o in inner):
                continue  # a file, or a dvc.lock older than dvc.yaml
            folders = [o for o in inner if o in folder_outs]
            clean = {f for f in files if under(f, path) and not any(under(f, o) for o in folders)}
            expected = len(clean | (set(inner) - set(folders))) + sum(counts[o] for o in folders)
            if nfiles > expected:
                extra = (
                    [p.name for p in sorted((REPO / path).iterdir()) if not provided(str(p.relative_to(REPO)))]
                    if (REPO / path).is_dir()
                    else []
                )
                stale.append(
                    f"{stage}: dvc.lock hashed {nfiles} files under {path}, a clean copy has {expected}"
                    + (f"; here, {extra} are produced by no stage" if extra else "")
                )
    assert not stale, f"delete what no stage produces from folder dependencies, then `dvc repro`: {stale}"

"""The pull-request report (``python -m aitale.reporting.review``), from the real ``dvc`` CLI in a clone of the
tiny project.

One clone, one ``dvc repro``: ``evaluate.prompt_fraction`` changes, which reruns ``evaluate`` alone and
changes its BLEU/ROUGE and the narrative metrics of the continuations. The workspace is reviewed
before the commit (uncommitted edit against ``main``), then the commit against its parent.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from aitale.evaluation.metrics import HEADLINE
from tests.support.projects import clone_project
from tests.support.repo import REPO
from tests.support.shell import git_commit, sh

# Not test_pipeline.py's edit (0.5): the clones share a DVC cache, and a run-cache entry from here would let its
# `dvc repro` of that edit restore evaluate instead of running it.
NEW_FRACTION = 0.4


def review(cwd: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PATH": path or f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    return subprocess.run(
        [sys.executable, "-m", "aitale.reporting.review", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def table(report: str, section: str) -> dict[tuple[str, str], list[str]]:
    """The rows of the Markdown table under ``## section``: {(path, name): [the other cells]}."""
    body = report.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in body.splitlines() if line.startswith("|")]
    return {(row[0], row[1]): row[2:] for row in rows[2:]}


def leaves(tree: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)):
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.fixture(scope="module")
def reviewed(dvc_project, tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    repo = clone_project(dvc_project, root / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    old_fraction = params["evaluate"]["prompt_fraction"]
    assert old_fraction != NEW_FRACTION
    params["evaluate"]["prompt_fraction"] = NEW_FRACTION
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    old_eval = json.loads((repo / "metrics/eval.json").read_text())
    old_plots = {path: path.read_bytes() for path in sorted((repo / "metrics/eval_plots").glob("*.csv"))}
    sh("dvc", "repro", cwd=repo)

    workspace = review(repo)  # defaults: main against the workspace, to stdout
    git_commit(repo, f"evaluate.prompt_fraction: {NEW_FRACTION}")
    committed = review(
        repo,
        "--base",
        "HEAD~1",
        "--head",
        "HEAD",
        "--output",
        str(root / "out/review.md"),
        "--plots-dir",
        str(root / "out/plots"),
    )
    return SimpleNamespace(
        repo=repo,
        root=root,
        old_fraction=old_fraction,
        workspace=workspace,
        committed=committed,
        old_eval=leaves(old_eval),
        new_eval=leaves(json.loads((repo / "metrics/eval.json").read_text())),
        changed_plot_files=[
            str(path.relative_to(repo)) for path, data in old_plots.items() if path.read_bytes() != data
        ],
    )


def check_params_and_metrics(report: str, base: str, head: str, run: SimpleNamespace) -> None:
    params = table(report, "Params")
    assert params[("params.yaml", "evaluate.prompt_fraction")] == [str(run.old_fraction), str(NEW_FRACTION)], report

    metrics = table(report, "Metrics")
    headline = table(report, "Headline story metrics")
    changed = {key for key in run.new_eval if run.old_eval.get(key) != run.new_eval[key]}
    assert changed & {"bleu", "rouge1", "rouge2", "rougeL"}, "the prompt fraction should move BLEU or ROUGE"
    for key in changed:
        group, metric = key.split(".")[1:] if key.startswith("narrative.") else (None, None)
        if metric in HEADLINE:  # the headline story metrics come first, by group of stories
            old, new, _change, _spread, _noise = headline[(group, key)]
        else:
            old, new, _change, _spread, _noise = metrics[("metrics/eval.json", key)]
        assert (float(old), float(new)) == pytest.approx((run.old_eval[key], run.new_eval[key])), key
    assert {("continuations", f"narrative.continuations.{m}") for m in HEADLINE} & set(headline)
    assert report.index("## Headline story metrics") < report.index("## Params") < report.index("## Metrics")
    unchanged = set(run.new_eval) - changed
    assert "perplexity" in unchanged  # scored on whole stories: the prompt fraction does not touch it
    listed = {key for path, key in metrics if path == "metrics/eval.json"} | {key for _, key in headline}
    assert not listed & unchanged, "only changes are listed"
    timings = table(report, "Timings")
    assert timings and all(path.startswith("metrics/speed/") or "seconds" in key for path, key in timings)
    assert not {path for path, _ in metrics} & {"metrics/speed/evaluate.json"}


def test_review_between_two_commits(reviewed):
    result = reviewed.committed
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the report went to --output
    report = (reviewed.root / "out/review.md").read_text()
    assert report.startswith("# Pipeline review: `HEAD~1` → `HEAD`\n")
    check_params_and_metrics(report, "HEAD~1", "HEAD", reviewed)

    plots = report.split("## Plots\n", 1)[1]
    assert reviewed.changed_plot_files, "the prompt fraction should change the per-collection narrative plot data"
    for path in reviewed.changed_plot_files:
        assert f"`{path}`" in plots, (path, plots)
    assert "Narrative metrics per collection (model continuations) | data changed" in plots
    assert "`metrics/eval_plots/bpb_by_collection.csv`" not in plots  # bits per byte: same model, same data
    assert "Loss (broad model)" not in plots  # train did not rerun
    assert "could not load" not in plots

    html = reviewed.root / "out/plots/index.html"
    assert html.exists() and "Narrative metrics per collection" in html.read_text()
    assert "[plots/index.html](plots/index.html)" in plots  # linked relative to the report
    assert sh("git", "status", "--porcelain", cwd=reviewed.repo) == ""  # nothing written into the repository


def test_review_of_the_workspace_against_main(reviewed):
    result = reviewed.workspace
    assert result.returncode == 0, result.stderr
    report = result.stdout
    assert report.startswith("# Pipeline review: `main` → `workspace`\n")
    check_params_and_metrics(report, "main", "workspace", reviewed)
    assert "Narrative metrics per collection (model continuations) | data changed" in report
    assert "index.html" not in report  # no --plots-dir, no HTML


def test_review_says_when_nothing_changed(reviewed):
    result = review(reviewed.repo, "--base", "HEAD", "--head", "HEAD")
    assert result.returncode == 0, result.stderr
    for section, line in [
        ("Headline story metrics", "No seed spread measured .*\n\nNo headline story metric changed."),
        ("Params", "No param changed."),
        ("Metrics", "No other metric changed."),
        ("Timings", "No timing changed."),
        ("Plots", "No plot changed"),
    ]:
        assert re.search(rf"## {section}\n\n{line}", result.stdout), result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr


def test_review_of_an_unknown_revision_fails_clearly(reviewed):
    assert_one_line_error(review(reviewed.repo, "--base", "no-such-rev"), "unknown git revision 'no-such-rev'")
    assert_one_line_error(review(reviewed.repo, "--head", "no-such-rev"), "unknown git revision 'no-such-rev'")


def test_review_outside_a_dvc_repository_fails_clearly(tmp_path):
    assert_one_line_error(review(tmp_path), "not inside a DVC repository")
    assert_one_line_error(review(tmp_path, path=os.pathsep.join(["/usr/bin", "/bin"])), "`dvc` not found on PATH")


def test_a_change_within_the_seed_spread_is_marked_noise(reviewed):
    changed = sorted(
        key
        for key in reviewed.new_eval
        if key.startswith("narrative.continuations.") and reviewed.old_eval.get(key) != reviewed.new_eval[key]
    )
    assert len(changed) >= 2, changed
    small, large = changed[0], changed[1]
    moved = lambda key: abs(reviewed.new_eval[key] - reviewed.old_eval[key])  # noqa: E731
    spread_file = reviewed.repo / "benchmarks/results/seed_spread.json"
    spread_file.parent.mkdir(parents=True, exist_ok=True)
    spread = {f"metrics/eval.json:{small}": moved(small) * 2, f"metrics/eval.json:{large}": moved(large) / 2}
    spread_file.write_text(json.dumps({"spread": spread}))
    try:
        result = review(reviewed.repo, "--base", "HEAD~1", "--head", "HEAD")
    finally:
        spread_file.unlink()
    assert result.returncode == 0, result.stderr
    rows = {**table(result.stdout, "Headline story metrics"), **table(result.stdout, "Metrics")}
    by_key = {key: cells for (_, key), cells in rows.items()}
    assert by_key[small][-1] == "noise" and by_key[large][-1] == ""
    assert float(by_key[small][-2]) == pytest.approx(moved(small) * 2, rel=1e-4)
    assert "a smaller change is marked noise" in result.stdout

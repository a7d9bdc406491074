"""Pull-request review: the params, metrics and plots that differ between two revisions, as Markdown.

    python -m aitale.reporting.review                                  # main against the workspace
    python -m aitale.reporting.review --base origin/main --output review.md --plots-dir review-plots
    python -m aitale.reporting.review --base HEAD~1 --head HEAD        # two commits

The report holds the headline story metrics that changed (``aitale.evaluation.metrics.HEADLINE``, per
group of stories in ``metrics/eval.json``) first, then ``dvc params diff --md``, the other metrics that
changed, the timings that changed (anything under ``metrics/speed/``, and seconds, latencies, rates, memory
and load averages elsewhere) in their own section, and a list of the plots whose data or definition changed.
A metric's change smaller than its measured seed-to-seed spread (``benchmarks/results/seed_spread.json``,
written by ``benchmarks/seed_spread.py``: the same pipeline under a few train seeds) is marked as noise.
A plot counts as changed when the data points
``dvc plots diff --json`` loads for it differ between the revisions (compared as a multiset, the
``rev`` field aside; images byte for byte), or when its entry under ``plots:`` in ``dvc.yaml``
differs. ``--plots-dir`` also writes ``dvc plots diff``'s HTML, both revisions overlaid.

The base defaults to the local ``main`` branch (pass ``--base origin/main`` for the remote's); the
head defaults to the workspace, so uncommitted edits and their ``dvc repro`` results are reviewed.
It runs the real ``dvc`` CLI, which must be on PATH (``source .venv/bin/activate``). Errors (no
``dvc``, not a DVC repository, an unknown revision) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from aitale.io import file_sha256

WORKSPACE = "workspace"  # what dvc calls the working tree in its diffs


class ReviewError(RuntimeError):
    """Something the user can fix: the message says what."""


def run(command: list[str], root: Path | None = None) -> str:
    """Run ``command`` in ``root``; its stdout, or a ReviewError naming the command and its last error line."""
    result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise ReviewError(f"`{' '.join(command[:3])}` failed: {lines[-1] if lines else f'exit {result.returncode}'}")
    return result.stdout


def dvc_root() -> Path:
    if shutil.which("dvc") is None:
        raise ReviewError("`dvc` not found on PATH: run `make setup` and `source .venv/bin/activate`")
    result = subprocess.run(["dvc", "root"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ReviewError(f"{Path.cwd()} is not inside a DVC repository")
    return (Path.cwd() / result.stdout.strip()).resolve()


def check_revision(rev: str, root: Path) -> str:
    """The short commit id of ``rev``, or a ReviewError if git does not know it."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "--short", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ReviewError(f"unknown git revision {rev!r} (for a pull request's base, fetch it: git fetch origin)")
    return result.stdout.strip()


SEED_SPREAD = Path("benchmarks/results/seed_spread.json")
HEADLINE_FILE = "metrics/eval.json"
TIMING_WORDS = ("seconds", "latency", "per_second", "elapsed", "load", "memory", "_ms", "throughput", "duration")


@dataclass
class MetricChange:
    path: str
    name: str
    old: object
    new: object
    diff: float | None

    def noise(self, spread: dict[str, float]) -> str:
        """ "noise" when the change is smaller than the metric's seed-to-seed spread, else ""."""
        limit = spread.get(f"{self.path}:{self.name}")
        return "noise" if limit is not None and self.diff is not None and abs(self.diff) < limit else ""


def metric_changes(revs: list[str], root: Path) -> list[MetricChange]:
    """Every metric ``dvc metrics diff --json`` reports as changed (added and removed ones included)."""
    doc = json.loads(run(["dvc", "metrics", "diff", "--json", *revs], root) or "{}")
    return [
        MetricChange(path, name, values.get("old"), values.get("new"), values.get("diff"))
        for path, changed in sorted(doc.items())
        for name, values in sorted(changed.items())
    ]


def is_timing(change: MetricChange) -> bool:
    """A figure of the machine rather than of the model: timings, rates, memory, load."""
    return change.path.startswith("metrics/speed/") or any(word in change.name for word in TIMING_WORDS)


def headline_key(change: MetricChange) -> tuple[int, str] | None:
    """(headline rank, group) for ``narrative.<group>.<headline metric>`` of the evaluation, else None."""
    from aitale.evaluation.metrics import HEADLINE

    parts = change.name.split(".")
    if change.path != HEADLINE_FILE or len(parts) != 3 or parts[0] != "narrative" or parts[2] not in HEADLINE:
        return None
    return HEADLINE.index(parts[2]), parts[1]


def read_spread(root: Path) -> dict[str, float] | None:
    """The seed-to-seed spread per ``path:metric``, or None when it has not been measured."""
    path = root / SEED_SPREAD
    if not path.exists():
        return None
    try:
        return {key: float(value) for key, value in json.loads(path.read_text(encoding="utf-8"))["spread"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ReviewError(f"{SEED_SPREAD}: not a seed spread file ({err}); rerun benchmarks/seed_spread.py") from None


def number(value: object) -> str:
    if isinstance(value, float):
        return str(round(value, 5))  # as `dvc metrics diff --md` shows them
    return "-" if value is None else str(value)


def change_rows(changes: list[MetricChange], spread: dict[str, float], first: str, first_of) -> list[str]:
    """Markdown table rows: ``first_of(change)`` in the first column, then old, new, change and the noise mark."""
    rows = [f"| {first} | Metric | Old | New | Change | Seed spread | |", "|---|---|---|---|---|---|---|"]
    for c in changes:
        limit = spread.get(f"{c.path}:{c.name}")
        cells = [first_of(c), c.name, number(c.old), number(c.new), number(c.diff), number(limit), c.noise(spread)]
        rows.append("| " + " | ".join(cell(text) for text in cells) + " |")
    return rows


def metric_sections(revs: list[str], root: Path) -> tuple[list[str], list[str], list[str]]:
    """The headline, other-metrics and timings sections' lines."""
    changes = metric_changes(revs, root)
    spread = read_spread(root)
    known = spread or {}
    headline = sorted((c for c in changes if headline_key(c)), key=headline_key)
    timings = [c for c in changes if not headline_key(c) and is_timing(c)]
    others = [c for c in changes if not headline_key(c) and not is_timing(c)]
    note = (
        [f"Seed spread: {code(str(SEED_SPREAD))} (max - min over train seeds); a smaller change is marked noise.", ""]
        if spread is not None
        else [f"No seed spread measured ({code('python -m benchmarks.seed_spread')}): no change is marked noise.", ""]
    )
    group = lambda c: headline_key(c)[1]  # noqa: E731
    path = lambda c: c.path  # noqa: E731
    first = change_rows(headline, known, "Stories", group) if headline else ["No headline story metric changed."]
    return (
        [*note, *first],
        change_rows(others, known, "Path", path) if others else ["No other metric changed."],
        change_rows(timings, known, "Path", path) if timings else ["No timing changed."],
    )


def diff_table(kind: str, revs: list[str], root: Path) -> str | None:
    """``dvc {params,metrics} diff --md``: the Markdown table, or None when nothing changed."""
    table = run(["dvc", kind, "diff", "--md", *revs], root).strip()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    return table if len(rows) > 2 else None  # header and separator only: no change


# --- plots ------------------------------------------------------------------------------------------


def plot_definitions(rev: str | None, root: Path) -> dict[str, object]:
    """The top-level ``plots:`` of ``dvc.yaml`` at ``rev`` (None: the workspace), as {id: properties}."""
    if rev is None:
        path = root / "dvc.yaml"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    else:
        result = subprocess.run(["git", "show", f"{rev}:./dvc.yaml"], cwd=root, capture_output=True, text=True)
        text = result.stdout if result.returncode == 0 else ""
    definitions: dict[str, object] = {}
    for entry in (yaml.safe_load(text) or {}).get("plots") or []:
        definitions.update(entry if isinstance(entry, dict) else {entry: None})
    return definitions


def definition_files(name: str, props: object) -> list[str]:
    """The data files a plot definition reads: the keys of its x/y mappings, else its id."""
    files: list[str] = []
    if isinstance(props, dict):
        for axis in ("x", "y"):
            if isinstance(props.get(axis), dict):
                files += [f for f in props[axis] if f not in files]
    return files or [name]


def plot_id_pattern(name: str) -> str:
    """``name`` as a ``--targets`` value matching that plot alone.

    DVC reads targets as regular expressions (``re.match``) after turning backslashes into
    slashes, so special characters are escaped as one-character classes, not with ``\\``.
    """
    return "".join("[]]" if c == "]" else f"[{c}]" if c in ".*+?{}()|$[" else c for c in name) + "$"


@dataclass
class PlotData:
    """What ``dvc plots diff --json`` loaded: per plot id and revision, its points (or an image's hash)."""

    points: dict[str, dict[str, Counter | str]] = field(default_factory=dict)
    errors: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # plot id ('' = all) -> message -> revs

    def load(self, revs: list[str], root: Path, name: str | None = None) -> bool:
        """Add one ``dvc plots diff --json`` call's data (all plots, or the one called ``name``); False on errors."""
        with tempfile.TemporaryDirectory() as scratch:  # -o: image files go here, not into the repository
            command = ["dvc", "plots", "diff", *revs, "--json", "-o", scratch]
            targets = ["--targets", plot_id_pattern(name)] if name else []
            doc = json.loads(run(command + targets, root) or "{}")
            for plot, entries in (doc.get("data") or {}).items():
                per_rev = self.points.setdefault(plot, {})
                for entry in entries:
                    if entry.get("type") == "image":
                        digest = file_sha256(entry["url"])
                        per_rev.update(dict.fromkeys(entry.get("revisions", []), digest))
                        continue
                    for rev in entry.get("revisions", []):
                        per_rev.setdefault(rev, Counter())
                    for point in entry.get("content", {}).get("data", {}).get("values", []):
                        rest = {k: v for k, v in point.items() if k != "rev"}
                        per_rev.setdefault(point.get("rev"), Counter())[json.dumps(rest, sort_keys=True)] += 1
        errors = [(e.get("msg") or e.get("type", "error"), e.get("rev", "?")) for e in doc.get("errors") or []]
        if name and not doc.get("data") and not errors:
            errors = [("no data", rev) for rev in (revs if len(revs) > 1 else [*revs, WORKSPACE])]
        for message, rev in errors:
            revs_failed = self.errors.setdefault(name or "", {}).setdefault(message, [])
            revs_failed += [rev] if rev not in revs_failed else []
        return not errors


@dataclass
class PlotChange:
    name: str
    change: str
    files: list[str]


def changed_filenames(old: Counter, new: Counter) -> set[str]:
    """The ``filename`` field (set by DVC when a plot reads several files) of the points that differ."""
    differing = (old - new) + (new - old)
    return {json.loads(key).get("filename") for key in differing} - {None}


def plot_changes(base: str, head: str | None, root: Path) -> tuple[list[PlotChange], int, PlotData, list[str]]:
    """The plots that changed, how many plots were compared, the data loaded and the ids that loaded cleanly.

    One ``dvc plots diff --json`` call loads every plot. DVC drops all of them when one fails to
    load (a DVC-tracked plot folder missing from the cache, say), so then each definition is
    loaded on its own and the failures are reported per plot.
    """
    revs = [base] + ([head] if head else [])
    head_label = head or WORKSPACE
    old_defs, new_defs = plot_definitions(base, root), plot_definitions(head, root)
    data = PlotData()
    loadable: list[str] = []
    if not data.load(revs, root) and (new_defs or old_defs):
        data = PlotData()
        for name in dict.fromkeys([*new_defs, *old_defs]):
            if data.load(revs, root, name):
                loadable.append(name)

    changes: dict[str, PlotChange] = {}
    compared = 0
    for name, per_rev in data.points.items():
        props = new_defs.get(name, old_defs.get(name))
        files = definition_files(name, props)
        old, new = per_rev.get(base), per_rev.get(head_label)
        if old is None and new is None:
            continue
        compared += 1
        if old is None or new is None:
            missing = base if old is None else head_label
            change = "new" if old is None else "removed"
            if data.errors.get(name):
                change = f"not loaded at `{missing}`"
            changes[name] = PlotChange(name, change, files)
        elif old != new:
            names = changed_filenames(old, new) if isinstance(old, Counter) else set()
            narrowed = [f for f in files if any(f.endswith(n) for n in names)]
            changes[name] = PlotChange(name, "data changed", narrowed or sorted(names) or files)
    for name in dict.fromkeys([*old_defs, *new_defs]):
        if old_defs.get(name, "absent") != new_defs.get(name, "absent"):
            what = (
                "definition added"
                if name not in old_defs
                else ("definition removed" if name not in new_defs else "definition changed")
            )
            if name in changes:
                changes[name].change += f", {what}"
            else:
                changes[name] = PlotChange(name, what, definition_files(name, new_defs.get(name, old_defs.get(name))))
    return list(changes.values()), compared, data, loadable


def render_plots(base: str, head: str | None, root: Path, out_dir: Path, targets: list[str]) -> Path:
    """``dvc plots diff BASE [HEAD] -o DIR``: the HTML page with both revisions overlaid."""
    revs = [base] + ([head] if head else [])
    patterns = ["--targets", *map(plot_id_pattern, targets)] if targets else []
    run(["dvc", "plots", "diff", *revs, "-o", str(out_dir), *patterns], root)
    html = out_dir / "index.html"
    if not html.exists():
        raise ReviewError(f"`dvc plots diff -o {out_dir}` wrote no index.html")
    return html


# --- the report -------------------------------------------------------------------------------------


def code(text: str) -> str:
    return f"`{text}`"


def cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def build_report(base: str, head: str | None, root: Path, plots_dir: Path | None, link_from: Path) -> str:
    base_id = check_revision(base, root)
    head_id = check_revision(head or "HEAD", root)
    head_label = head or WORKSPACE
    revs = [base] + ([head] if head else [])

    title = f"# Pipeline review: {code(base)} → {code(head_label)}"
    head_note = f"{code(head)} ({head_id})" if head else f"the workspace (files as they are, on {head_id})"
    lines = [title, "", f"Base {code(base)} ({base_id}); head {head_note}.", ""]

    headline, others, timings = metric_sections(revs, root)
    lines += ["## Headline story metrics", "", *headline, ""]
    lines += ["## Params", ""]
    lines += [diff_table("params", revs, root) or "No param changed.", ""]
    lines += ["## Metrics", "", *others, ""]
    lines += ["## Timings", "", *timings, ""]

    lines += ["## Plots", ""]
    changes, compared, data, loadable = plot_changes(base, head, root)
    if changes:
        lines += [
            f"{len(changes)} of {max(compared, len(changes))} plots changed:",
            "",
            "| Plot | Change | Files |",
            "|---|---|---|",
        ]
        lines += [f"| {cell(c.name)} | {c.change} | {cell(', '.join(code(f) for f in c.files))} |" for c in changes]
    else:
        lines += [f"No plot changed ({compared} compared)."]
    if data.errors:
        lines += ["", "DVC could not load some plot data (fetch or reproduce that revision's outputs):", ""]
        lines += [
            f"- {code(name) if name else 'all plots'} at {', '.join(map(code, revs_failed))}: {message}"
            for name, messages in data.errors.items()
            for message, revs_failed in messages.items()
        ]
    if plots_dir is not None and data.errors and not loadable:
        lines += ["", "No plot could be rendered."]
    elif plots_dir is not None:
        html = render_plots(base, head, root, plots_dir, loadable if data.errors else [])
        link = Path(os.path.relpath(html, link_from)).as_posix()
        lines += ["", f"The plots, both revisions overlaid: [{link}]({link})"]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m aitale.reporting.review",
        description="Markdown review of what changed between two revisions: dvc params diff, dvc metrics diff "
        "and the plots whose data or definition changed.",
    )
    parser.add_argument(
        "--base",
        default="main",
        metavar="REV",
        help="git revision to compare against (default: %(default)s; origin/main for the remote's)",
    )
    parser.add_argument(
        "--head", metavar="REV", help="git revision under review (default: the workspace, uncommitted changes included)"
    )
    parser.add_argument("--output", type=Path, metavar="FILE", help="write the Markdown here (default: stdout)")
    parser.add_argument(
        "--plots-dir",
        type=Path,
        metavar="DIR",
        help="also write `dvc plots diff`'s HTML (both revisions overlaid) to DIR/index.html",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output.resolve() if args.output else None
    plots_dir = args.plots_dir.resolve() if args.plots_dir else None
    try:
        root = dvc_root()
        report = build_report(args.base, args.head, root, plots_dir, output.parent if output else Path.cwd())
    except ReviewError as err:
        print(f"aitale.reporting.review: error: {err}", file=sys.stderr)
        return 2
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report, encoding="utf-8")
    else:
        sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

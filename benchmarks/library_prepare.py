"""How long `prepare` takes on the 87-book library (goal: under 2 minutes on 2 cores), and that it is the same bytes.

Downloads the library from its mirror (../shared/corpus/library) with the download stage, then runs the
prepare stage on it with the `make library` recipe's settings (read from `make -n library-data`, so they
have one home) twice, under PYTHONHASHSEED 1 and 2, and compares every output byte for byte. The ten
reference books are prepared alongside, with the same settings, as the baseline: their words per CPU
second say how loaded the machine was. Needs the content screen (`make repro` builds models/safety).

    .venv/bin/python -m benchmarks.library_prepare
    .venv/bin/python -m benchmarks.library_prepare --screen /path/to/models/safety

Results: benchmarks/results/library_prepare.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from aitale.machine import LoadRange, describe
from aitale.params import set_dotted

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpus"
GOAL_SECONDS = 120.0


def recipe_settings(mirror: Path) -> dict[str, object]:
    """The -S settings of `make library-data`, as {dotted key: value}."""
    made = subprocess.run(
        ["make", "-s", "-n", "library-data", f"LIBRARY_MIRROR={mirror}"], cwd=REPO, capture_output=True, text=True
    )
    line = next((ln for ln in made.stdout.splitlines() if ln.startswith("dvc exp run")), None)
    if line is None:
        sys.exit(f"`make -n library-data` printed no `dvc exp run`:\n{made.stdout}{made.stderr}")
    words = shlex.split(line)
    pairs = [words[k + 1].split("=", 1) for k, word in enumerate(words) if word == "-S"]
    return {key.lstrip("+"): yaml.safe_load(value) for key, value in pairs}


def stage(name: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run one stage; (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", f"stages.{name}", *args], cwd=REPO, env=env, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"stages.{name} failed:\n{result.stderr.decode()[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def prepared(root: Path, settings: dict, books: list[int], mirror: Path, screen: Path, seeds: list[str]) -> dict:
    """Download ``books`` from ``mirror`` and prepare them once per hash seed; times and byte identity."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in settings.items():
        params = set_dotted(params, key, value)
    params = set_dotted(params, "data.gutenberg.books", books)
    params = set_dotted(params, "data.gutenberg.mirror", str(mirror))
    source, split = params["data"]["gutenberg"], params["prepare"]["split"]
    source["sha256"] = {book: digest for book, digest in source["sha256"].items() if book in books}
    split["holdout_books"] = [book for book in split["holdout_books"] if book in books]
    root.mkdir(parents=True)
    config = root / "params.yaml"
    config.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ}
    stage("download", ["--config", str(config), "--output-dir", str(root / "raw")], env)
    runs = []
    for seed in seeds:
        out = root / f"seed{seed}"
        args = ["--config", str(config), "--stories", str(REPO / "data/stories"), "--books", str(root / "raw")]
        args += ["--screen", str(screen), "--output-dir", str(out / "processed"), "--metrics", str(out / "data.json")]
        args += ["--books-table", str(out / "books.json"), "--groups", str(out / "groups.json")]
        wall, cpu = stage("prepare", args, {**env, "PYTHONHASHSEED": seed})
        runs.append({"hash_seed": seed, "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)})
    first, *others = [root / f"seed{seed}" for seed in seeds]
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    same = all((first / f).read_bytes() == (other / f).read_bytes() for other in others for f in files)
    data = json.loads((first / "data.json").read_text())
    return {"books": len(books), "runs": runs, "identical_bytes": same, "files_compared": len(files),
            "stories": data["stories"], "words": data["words"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, default=SHARED / "library", help="the library's mirror folder")
    parser.add_argument("--screen", type=Path, default=REPO / "models/safety", help="the content screen's folder")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks/results/library_prepare.json")
    args = parser.parse_args()
    if not (args.mirror / "MANIFEST.tsv").exists() or not (args.screen / "screen.json").exists():
        sys.exit(f"needs the library mirror ({args.mirror}) and the content screen ({args.screen}): make repro first")
    settings = recipe_settings(args.mirror)
    library = settings["data.gutenberg.books"]
    reference = [int(line.split("\t")[0]) for line in (SHARED / "gutenberg/MANIFEST.tsv").read_text().splitlines()[1:]]
    load = LoadRange()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = prepared(Path(tmp) / "ten", settings, reference, SHARED / "gutenberg", args.screen, ["1"])
        load.sample()
        measured = prepared(Path(tmp) / "library", settings, library, args.mirror, args.screen, ["1", "2"])
        load.sample()
    runs = measured["runs"]
    result = {
        "goal_seconds": GOAL_SECONDS,
        "library": measured,
        "baseline_ten_books": baseline,
        # prepare runs on one core: on an idle 2-core machine its wall time is its CPU time; a busy one
        # (see load_average) stretches the wall time, not the work
        "wall_within_goal": max(run["wall_seconds"] for run in runs) <= GOAL_SECONDS,
        "cpu_within_goal": max(run["cpu_seconds"] for run in runs) <= GOAL_SECONDS,
        "load_average": load.summary(),
        "machine": describe(),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("library", "baseline_ten_books", "wall_within_goal", "cpu_within_goal", "load_average")
    print(json.dumps({k: result[k] for k in shown}, indent=2))


if __name__ == "__main__":
    main()

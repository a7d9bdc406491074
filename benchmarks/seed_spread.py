"""How far every metric moves when nothing but the training seed changes: what `make review` calls noise.

Queues the pipeline up to ``evaluate`` (train, then evaluate, and whatever they need) once per seed with
``dvc exp run evaluate --queue -S train.seed=SEED``, runs the queue (``--jobs`` at a time, each run in a
temporary copy: the workspace is left as it is), each run a named experiment (``seed-spread-SEED``,
replaced when it exists), and reads every metric of each from ``dvc exp show --json``.
The spread of a metric is the largest minus the smallest value over the seeds; a change
``aitale.reporting.review`` sees that is smaller than it is marked noise. Metrics that are not numbers, or that
some run lacks, are left out.

    .venv/bin/python -m benchmarks.seed_spread                       # seeds 1, 2, 3 of the default pipeline
    .venv/bin/python -m benchmarks.seed_spread --seeds 1 2 3 4 5 -S evaluate.max_stories=50

The default pipeline's train and evaluate take minutes each on 2 cores: three seeds take a while.

Results: benchmarks/results/seed_spread.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

from aitale.io import write_json
from aitale.machine import describe

REPO = Path(__file__).resolve().parents[1]
NAME = "seed-spread-{seed}"


def dvc(*args: str, repo: Path) -> str:
    result = subprocess.run(["dvc", *args], cwd=repo, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise SystemExit(f"`dvc {' '.join(args[:3])}` failed: {lines[-1] if lines else result.returncode}")
    return result.stdout


def run_seeds(seeds: list[int], overrides: list[str], jobs: int, repo: Path) -> float:
    """One queued experiment per seed, run to the end; the seconds the queue took."""
    for seed in seeds:
        name = NAME.format(seed=seed)
        subprocess.run(["dvc", "exp", "remove", name], cwd=repo, capture_output=True)  # a previous run's, if any
        sets = [arg for value in [f"train.seed={seed}", *overrides] for arg in ("-S", value)]
        dvc("exp", "run", "evaluate", "--queue", "--name", name, *sets, repo=repo)
    started = time.perf_counter()
    dvc("queue", "start", "-j", str(jobs), repo=repo)
    names = {NAME.format(seed=seed) for seed in seeds}
    while True:
        time.sleep(5)
        rows = [line.split() for line in dvc("queue", "status", repo=repo).splitlines()]
        states = {row[1]: row[-1] for row in rows if len(row) >= 4 and row[1] in names}  # Task Name Created Status
        if states and all(state in ("Success", "Failed") for state in states.values()):
            break
    if failed := sorted(name for name, state in states.items() if state == "Failed"):
        raise SystemExit(f"{', '.join(failed)} failed: see `dvc queue logs NAME` in {repo}")
    return round(time.perf_counter() - started, 1)


def experiment_metrics(names: list[str], repo: Path) -> dict[str, dict[str, float]]:
    """{experiment name: {"path:dotted.key": value}} for the named experiments, numbers only."""
    found: dict[str, dict[str, float]] = {}
    for row in json.loads(dvc("exp", "show", "--json", repo=repo)):
        for exp in row.get("experiments") or []:
            rev = exp["revs"][0]
            if rev.get("name") in names:
                metrics = (rev.get("data") or {}).get("metrics") or {}
                found[rev["name"]] = {
                    f"{path}:{key}": value
                    for path, doc in metrics.items()
                    for key, value in leaves(doc.get("data") or {}).items()
                }
    missing = sorted(set(names) - set(found))
    if missing:
        raise SystemExit(f"dvc exp show lists no metrics for {', '.join(missing)}")
    return found


def leaves(tree: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(leaves(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def spread(runs: dict[str, dict[str, float]]) -> dict[str, float]:
    """Per metric every run has: max - min over the runs."""
    shared = set.intersection(*(set(values) for values in runs.values()))
    return {
        key: round(max(v[key] for v in runs.values()) - min(v[key] for v in runs.values()), 6) for key in sorted(shared)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="train seeds (default: 1 2 3)")
    parser.add_argument("-S", dest="overrides", action="append", default=[], help="another param for every run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default: %(default)s)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the DVC project (default: this one)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks/results/seed_spread.json")
    args = parser.parse_args()
    if len(set(args.seeds)) < 2:
        raise SystemExit("--seeds: at least two different seeds")
    seconds = run_seeds(args.seeds, args.overrides, args.jobs, args.repo)
    names = [NAME.format(seed=seed) for seed in args.seeds]
    runs = experiment_metrics(names, args.repo)
    result = {
        "how": "max - min over the seeds of each metric, the pipeline run to evaluate with only train.seed changed",
        "seeds": args.seeds,
        "overrides": args.overrides,
        "spread": spread(runs),
        "values": {key: [runs[name][key] for name in names] for key in spread(runs)},
        "seconds": seconds,
        "machine": describe(),
    }
    write_json(args.output, result)
    print(f"{len(result['spread'])} metrics over seeds {args.seeds} -> {args.output}")


if __name__ == "__main__":
    main()

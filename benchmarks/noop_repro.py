"""How long a `dvc repro` takes when nothing changed, on the default pipeline (goal: under 3 s).

Runs in the repository after `make repro`. Each round times, interleaved, the no-op
`dvc repro` and two baselines: `dvc --version` (the CLI's own start-up, the floor of any dvc
command) and `dvc status` (the hashing and comparison a no-op repro also does). Medians over
the rounds; the ratios say what the repro adds on top of each.

    .venv/bin/python -m benchmarks.noop_repro            # 7 rounds
    .venv/bin/python -m benchmarks.noop_repro --rounds 3

Results: benchmarks/results/noop_repro.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"noop_repro": ["dvc", "repro"], "dvc_version": ["dvc", "--version"], "dvc_status": ["dvc", "status"]}
GOAL_SECONDS = 3.0


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed, result.stdout + result.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (default 7), after one warm-up")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    _, status = timed(COMMANDS["dvc_status"], env)  # also the warm-up: file system caches, bytecode
    if "up to date" not in status:
        sys.exit(f"the pipeline has changes; run `make repro` first:\n{status}")
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, command in COMMANDS.items():
            elapsed, output = timed(command, env)
            if name == "noop_repro" and "Running stage" in output:
                sys.exit(f"`dvc repro` ran a stage, so this was not a no-op:\n{output}")
            seconds[name].append(elapsed)

    median = {name: round(statistics.median(values), 3) for name, values in seconds.items()}
    result = {
        "median_seconds": median,
        "min_seconds": {name: round(min(values), 3) for name, values in seconds.items()},
        "ratios": {
            "noop_repro_vs_dvc_status": round(median["noop_repro"] / median["dvc_status"], 2),
            "noop_repro_vs_dvc_version": round(median["noop_repro"] / median["dvc_version"], 2),
        },
        "goal": {"noop_repro_seconds": GOAL_SECONDS, "met": median["noop_repro"] < GOAL_SECONDS},
        "rounds": args.rounds,
        "stages": len(timed(["dvc", "stage", "list", "--name-only"], env)[1].split()),
        "setup": {
            "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "dvc": timed(["dvc", "--version"], env)[1].strip(),
        },
    }
    out = REPO / "benchmarks/results/noop_repro.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

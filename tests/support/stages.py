"""Running the stages as DVC does: ``python -m stages.<name>`` from the repository root."""

import subprocess
import sys
from pathlib import Path

from tests.support.repo import REPO


def run_stage(
    stage: str, *args: str, config: Path | None = None, env: dict[str, str] | None = None
) -> "subprocess.CompletedProcess[str]":
    """Run ``python -m stages.<stage>`` from the repository root, as DVC would (``env``: its whole environment)."""
    command = [sys.executable, "-m", f"stages.{stage}", *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)


def train(root: Path, data: Path, config: Path, tokenizer: Path | None = None):
    return run_stage(
        "train",
        "--tokenizer",
        str(tokenizer or data / "tokenizer"),
        "--train",
        str(data / "processed/train.jsonl"),
        "--val",
        str(data / "processed/val.jsonl"),
        "--output-dir",
        str(root / "weights/storyteller"),
        "--checkpoints",
        str(root / "checkpoints"),
        "--live",
        str(root / "live"),
        "--speed",
        str(root / "speed"),
        "--metrics",
        str(root / "metrics/train.json"),
        config=config,
    )

import os
import subprocess
import sys
from pathlib import Path

import pytest

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

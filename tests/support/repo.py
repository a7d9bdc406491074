"""The repository under test and the reference corpus laid beside it."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def reference_corpus_dir() -> Path:
    """The ten reference Gutenberg books, laid beside the repository as ``../shared/corpus/gutenberg``."""
    return Path(os.environ.get("AITALE_CORPUS", REPO.parent / "shared" / "corpus" / "gutenberg"))


def manifest(corpus: Path) -> dict[int, dict[str, str]]:
    lines = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return {int(row.split("\t")[0]): dict(zip(header, row.split("\t"))) for row in lines[1:]}

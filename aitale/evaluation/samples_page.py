"""Sample stories as Markdown and as a standalone HTML page, each with its metric values."""

from __future__ import annotations

from pathlib import Path

from aitale.io import write_text
from aitale.templates import render


def write_samples(folder: Path, model_path: str, samples: list[dict]) -> None:
    """Write ``samples.md`` and ``samples.html`` to ``folder``; each metric is shown with 3 decimals.

    ``samples``: dicts with ``title``, ``story`` and ``metrics`` (name -> value). The Markdown
    holds the text verbatim; the HTML escapes it, one paragraph per blank-line-separated block.
    """
    pages = [
        {
            "title": sample["title"],
            "story": sample["story"],
            "metrics": sorted(sample["metrics"].items()),
            "paragraphs": [p for p in sample["story"].split("\n\n") if p.strip()],
        }
        for sample in samples
    ]
    write_text(folder / "samples.md", render("samples.md.j2", model_path=model_path, samples=pages))
    write_text(folder / "samples.html", render("samples.html.j2", model_path=model_path, samples=pages))

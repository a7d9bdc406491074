"""Sample stories as Markdown and as a standalone HTML page, each with its metric values."""

from __future__ import annotations

import html
from pathlib import Path

from aitale.io import write_text


def write_samples(folder: Path, model_path: str, samples: list[dict]) -> None:
    """``samples``: dicts with ``title``, ``story`` and ``metrics`` (name -> value)."""
    md = [f"# Sample stories from `{model_path}`", ""]
    page = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>AI Tale samples: {html.escape(model_path)}</title>",
        "<style>body{font-family:Georgia,serif;max-width:48em;margin:2em auto;line-height:1.5}"
        "table{border-collapse:collapse;font:0.85em sans-serif}td,th{border:1px solid #ccc;padding:2px 8px}"
        "article{border-bottom:1px solid #ddd;padding-bottom:1em}</style></head><body>",
        f"<h1>Sample stories from <code>{html.escape(model_path)}</code></h1>",
    ]
    for number, sample in enumerate(samples, start=1):
        rows = sorted(sample["metrics"].items())
        md += [f"## {number}. {sample['title']}", "", *sample["story"].split("\n"), "",
               "| metric | value |", "| --- | --- |", *(f"| {k} | {v:.3f} |" for k, v in rows), ""]
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in sample["story"].split("\n\n") if p.strip())
        table = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.3f}</td></tr>" for k, v in rows)
        page.append(f"<article><h2>{number}. {html.escape(sample['title'])}</h2>{paragraphs}<table>{table}</table></article>")
    page.append("</body></html>")
    write_text(folder / "samples.md", "\n".join(md) + "\n")
    write_text(folder / "samples.html", "\n".join(page) + "\n")

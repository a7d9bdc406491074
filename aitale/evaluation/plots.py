"""The small CSV files behind the evaluation plots of ``dvc.yaml`` (git-tracked, diffable): rows sorted, values
rounded, so the same evaluation writes the same bytes."""

from __future__ import annotations

import csv
from collections import defaultdict
from io import StringIO
from pathlib import Path
from statistics import fmean

from aitale.evaluation.narrative.arc import sentiment_arc
from aitale.evaluation.perplexity import Score
from aitale.evaluation.suite import mean_metrics
from aitale.io import write_text


def write_plots(
    folder: Path,
    continuations: list[dict],
    story_metrics: dict,
    by_collection: dict[str, Score],
    generated: list[str],
    references: list[str],
) -> None:
    """Bits per byte per collection, the story metrics' means per collection (of the continuations), and the
    mean sentiment arc of the samples and of the real stories."""
    rows = [("collection", "bits_per_byte")] + [
        (n, round(s.bits_per_byte, 4)) for n, s in sorted(by_collection.items())
    ]
    write_csv(folder / "bpb_by_collection.csv", rows)
    grouped: dict[str, list[str]] = defaultdict(list)
    for c in continuations:
        grouped[c["collection"]].append(c["story"])
    rows = [("collection_metric", "value")]
    for collection, texts in sorted(grouped.items()):
        rows += [(f"{collection} / {name}", value) for name, value in mean_metrics(texts, story_metrics).items()]
    write_csv(folder / "metrics_by_collection.csv", rows)
    for name, texts in (("samples", generated), ("references", references)):
        arcs = [sentiment_arc(t) for t in texts]
        mean_arc = [round(fmean(points), 4) for points in zip(*arcs)]
        write_csv(folder / f"arc_{name}.csv", [("segment", "sentiment")] + list(enumerate(mean_arc, start=1)))


def write_csv(path: Path, rows: list[tuple]) -> None:
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_text(path, buffer.getvalue())

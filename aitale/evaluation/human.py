"""Human evaluation: a blind rating sheet comparing two models, and the scoring of its ratings.

``sheet``: both models write one story per prompt; the stories are shuffled and given
opaque ids (``S01``, ``S02``, ...) so raters cannot tell which model wrote which. Which
model wrote each sample is kept in ``key.json``, apart from the sheet.

``score``: completed rating CSVs (one per rater, or one holding many) are validated row by
row against the key and the scale, then averaged per model and rubric criterion.

Scoring needs no torch: generation imports it lazily, so ``score`` starts in a fraction of
a second and runs anywhere the ratings are collected.
"""

from __future__ import annotations

import csv
import html
import io
import json
import random
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aitale.data.structure import prompt
from aitale.params import GenerateParams

MODEL, BASELINE = "model", "baseline"
LABELS = (MODEL, BASELINE)

# The spec's rubric: one column of sheet.csv per criterion, in this order.
RUBRIC = {
    "engagement": "Does the story catch and hold a child's attention from start to end?",
    "plot_coherence": "Do the events follow from one another, with a clear beginning, middle and end?",
    "character_development": "Are the characters distinct, with wishes, feelings and changes a child can follow?",
    "age_appropriateness": "Are the words, themes and events right for children (nothing frightening, cruel or adult)?",
    "educational_value": "Does the story teach something: a value, a lesson, new words or facts about the world?",
    "entertainment_value": "Is it fun, funny or delightful to hear, something a child would ask for again?",
}
CRITERIA = tuple(RUBRIC)
COLUMNS = ("sample_id", "title", "story", *CRITERIA, "rater", "comments")
REQUIRED_COLUMNS = ("sample_id", *CRITERIA, "rater")
SHEET_FILES = ("sheet.csv", "sheet.html", "key.json", "README.md")
MAX_PROBLEMS_SHOWN = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class RatingsError(ValueError):
    """A ratings file or the key is malformed; the message names the file and row."""


@dataclass(frozen=True)
class Sample:
    sample_id: str
    title: str
    story: str
    label: str  # MODEL or BASELINE: goes to key.json only
    path: str


# --- sheet -------------------------------------------------------------------------------


def write_stories(model_dir: str | Path, titles: Sequence[str], generate: GenerateParams, seed: int) -> list[str]:
    """One story per title from the model saved in ``model_dir``, with the ``generate`` settings.

    Story ``i`` is sampled from its own seed derived from ``seed`` and ``i``: the two models
    draw the same random numbers for a title (a paired comparison), while the titles of one
    model do not share an opening. The settings replace the model's own generation_config,
    so that both models write under the same ones.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aitale.generation import continue_text

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    return [clean_story(continue_text(model, tokenizer, prompt(title), generate, seed * 1_000_003 + index))
            for index, title in enumerate(titles)]


def clean_story(text: str) -> str:
    """Unix newlines and no control characters: a small model can emit any byte, a sheet must not."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def shuffle_samples(stories: dict[str, tuple[str, list[str]]], titles: Sequence[str], seed: int) -> list[Sample]:
    """Samples in a seeded random order with opaque ids; ``stories`` maps label -> (path, stories)."""
    drafts = [(label, path, title, story)
              for label, (path, texts) in stories.items() for title, story in zip(titles, texts, strict=True)]
    random.Random(seed).shuffle(drafts)
    width = max(2, len(str(len(drafts))))
    return [Sample(f"S{i:0{width}d}", title, story, label, path)
            for i, (label, path, title, story) in enumerate(drafts, start=1)]


def sheet_csv(samples: Iterable[Sample]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180, as the HTML form downloads
    writer.writerow(COLUMNS)
    for s in samples:
        writer.writerow([s.sample_id, s.title, s.story, *([""] * len(CRITERIA)), "", ""])
    return buffer.getvalue()


def key_json(samples: Iterable[Sample]) -> dict[str, dict[str, str]]:
    return {s.sample_id: {"label": s.label, "path": s.path, "title": s.title} for s in samples}


def readme(samples: Sequence[Sample], scale_min: int, scale_max: int) -> str:
    rubric = "\n".join(f"- **{name}**: {text}" for name, text in RUBRIC.items())
    return f"""# Story rating sheet

You are helping to judge stories written for children. There are {len(samples)} short stories,
each with an id ({samples[0].sample_id}, {samples[1].sample_id if len(samples) > 1 else '...'}, ...) and a title.
They come in a random order, and you are not told who or what wrote each one.

## What to do

1. Open `sheet.html` in any web browser (it works offline; nothing is sent anywhere).
2. Type your name (or initials) at the top.
3. Read each story, then rate it on every criterion below, from {scale_min} (poor) to
   {scale_max} (excellent). Whole numbers only. Judge each story on its own, as if
   reading it to a child of 3 to 12; short stories are fine, unfinished ones count as they are.
4. Add a comment if you wish (what worked, what did not).
5. Press **Download ratings (CSV)** and send the downloaded file back.

No browser? Fill in `sheet.csv` in a spreadsheet instead: one rating per cell in the
criterion columns, your name in the `rater` column of every row, then save it as CSV.
Do not change the `sample_id`, `title` or `story` columns.

## Rubric ({scale_min} = poor, {scale_max} = excellent)

{rubric}

## For the organiser

Send raters `sheet.html` (or `sheet.csv`) and this README only. `key.json` says which
model wrote each sample: keep it back until all ratings are in, then run

    python -m stages.human_eval score --ratings ratings-*.csv --key key.json --output metrics/human_eval.json
"""


def sheet_html(samples: Sequence[Sample], scale_min: int, scale_max: int) -> str:
    """A self-contained form: a number input per story and criterion, and a CSV download button."""
    e = html.escape
    rubric = "\n".join(f"<tr><th>{e(label(name))}</th><td>{e(text)}</td></tr>" for name, text in RUBRIC.items())
    sections = []
    for s in samples:
        inputs = "\n".join(
            f'<label>{e(label(name))} <input type="number" name="{e(s.sample_id)}.{name}" data-criterion="{name}" '
            f'min="{scale_min}" max="{scale_max}" step="1" required inputmode="numeric"></label>'
            for name in CRITERIA
        )
        sections.append(
            f'<section class="sample" data-sample-id="{e(s.sample_id)}" data-title="{e(s.title)}">\n'
            f"<h2>{e(s.sample_id)}: {e(s.title)}</h2>\n"
            f'<div class="story">{e(s.story)}</div>\n'
            f'<fieldset><legend>Ratings ({scale_min} = poor, {scale_max} = excellent)</legend>\n{inputs}\n'
            f'<label class="comments">Comments <textarea name="{e(s.sample_id)}.comments" rows="2"></textarea></label>\n'
            f"</fieldset>\n</section>"
        )
    # "<" is escaped so that no story or title text can close the script element.
    columns = json.dumps(list(COLUMNS)).replace("<", "\\u003c")
    criteria = json.dumps(list(CRITERIA)).replace("<", "\\u003c")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Story rating sheet</title>
<style>
body {{ font-family: Georgia, serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; vertical-align: top; padding: 0.2rem 0.6rem; }}
.sample {{ border-top: 2px solid #999; margin-top: 2rem; }}
.story {{ white-space: pre-wrap; background: #faf7f0; padding: 1rem; }}
fieldset label {{ display: inline-block; margin: 0.3rem 1rem 0.3rem 0; font-family: sans-serif; }}
fieldset input {{ width: 3.5rem; }} .comments {{ display: block; }} textarea {{ width: 100%; }}
input:invalid {{ border-color: #c00; }} #status {{ font-family: sans-serif; }}
</style>
</head>
<body>
<h1>Story rating sheet</h1>
<p>Read each story and rate it on every criterion from {scale_min} (poor) to {scale_max} (excellent),
whole numbers only. The stories come in a random order; you are not told who or what wrote each one.
When every story is rated, press the button at the bottom and send back the downloaded file.</p>
<table>
{rubric}
</table>
<form id="ratings" onsubmit="return false">
<p><label>Your name <input type="text" id="rater" name="rater" required></label></p>
{chr(10).join(sections)}
<p><button type="button" id="download">Download ratings (CSV)</button> <span id="status"></span></p>
</form>
<script>
"use strict";
const COLUMNS = {columns};
const CRITERIA = {criteria};

function csvCell(value) {{
  return '"' + String(value).replace(/"/g, '""') + '"';
}}

function ratingsCsv(rows) {{
  return [COLUMNS, ...rows].map(row => row.map(csvCell).join(",")).join("\\r\\n") + "\\r\\n";
}}

function collectRows(doc, rater) {{
  return Array.from(doc.querySelectorAll("section.sample")).map(section => {{
    const id = section.dataset.sampleId;
    const field = name => section.querySelector('[name="' + id + "." + name + '"]').value.trim();
    return [id, section.dataset.title, section.querySelector(".story").textContent,
            ...CRITERIA.map(field), rater, field("comments")];
  }});
}}

if (typeof document !== "undefined") {{
  document.getElementById("download").addEventListener("click", () => {{
    const form = document.getElementById("ratings");
    const rater = document.getElementById("rater").value.trim().replace(/\\s+/g, " ");
    const status = document.getElementById("status");
    if (!rater || !form.reportValidity()) {{
      status.textContent = "Please give your name and a whole-number rating for every story and criterion.";
      if (!rater) document.getElementById("rater").focus();
      return;
    }}
    const blob = new Blob([ratingsCsv(collectRows(document, rater))], {{type: "text/csv;charset=utf-8"}});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "ratings-" + (rater.replace(/[^A-Za-z0-9_-]+/g, "_") || "rater") + ".csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    status.textContent = "Saved " + link.download + ": please send it back.";
  }});
}}
</script>
</body>
</html>
"""


def label(criterion: str) -> str:
    return criterion.replace("_", " ").capitalize()


# --- score -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    sample_id: str
    rater: str
    scores: dict[str, int]


def read_key(path: str | Path) -> dict[str, dict[str, str]]:
    path = Path(path)
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RatingsError(f"{path}: key file not found") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise RatingsError(f"{path}: not a JSON key written by the sheet command: {err}") from None
    valid = isinstance(key, dict) and key and all(
        isinstance(entry, dict) and entry.get("label") in LABELS and isinstance(entry.get("path"), str)
        for entry in key.values()
    )
    if not valid:
        raise RatingsError(f"{path}: not a key written by the sheet command "
                           f"(expected sample id -> {{label: model|baseline, path, title}})")
    return key


def read_ratings(paths: Sequence[str | Path], key: dict[str, dict[str, str]], scale_min: int,
                 scale_max: int) -> list[Rating]:
    """Every rating row of ``paths``, validated; raises :class:`RatingsError` listing each bad row.

    Rows are numbered as a spreadsheet shows them: the header is row 1. Fully blank rows
    are skipped. A rater is identified by the ``rater`` cell, with spaces normalised, so one
    rater's ratings may be split over several files but may not rate a sample twice.
    """
    problems: list[str] = []
    ratings: list[Rating] = []
    seen: dict[tuple[str, str], str] = {}
    for path in map(Path, paths):
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                rows = list(csv.reader(handle))
        except FileNotFoundError:
            problems.append(f"{path}: file not found")
            continue
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text (save the spreadsheet as CSV UTF-8)")
            continue
        except csv.Error as err:
            problems.append(f"{path}: not a readable CSV file: {err}")
            continue
        if not rows:
            problems.append(f"{path}: empty file (expected the columns of sheet.csv)")
            continue
        header = [cell.strip() for cell in rows[0]]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing:
            problems.append(f"{path}: row 1: missing column(s) {', '.join(missing)} "
                            f"(expected the columns of sheet.csv: {','.join(COLUMNS)})")
            continue
        for number, cells in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in cells):
                continue
            where = f"{path}: row {number}"
            if len(cells) > len(header):
                problems.append(f"{where}: {len(cells)} cells but only {len(header)} columns")
                continue
            row = dict(zip(header, (cell.strip() for cell in cells)))
            rating, row_problems = _check_row(row, key, scale_min, scale_max)
            problems += [f"{where}: {problem}" for problem in row_problems]
            if rating is None:
                continue
            first = seen.setdefault((rating.rater, rating.sample_id), where)
            if first != where:
                problems.append(f"{where}: duplicate: {rating.rater!r} already rated {rating.sample_id} ({first})")
                continue
            ratings.append(rating)
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"... and {len(problems) - len(shown)} more")
        raise RatingsError(f"{len(problems)} problem(s) in the ratings:\n" + "\n".join(f"  {p}" for p in shown))
    if not ratings:
        raise RatingsError(f"no ratings in {', '.join(map(str, paths))}")
    return ratings


def _check_row(row: dict[str, str], key: dict[str, dict[str, str]], scale_min: int,
               scale_max: int) -> tuple[Rating | None, list[str]]:
    problems = []
    sample_id = row.get("sample_id", "")
    if not sample_id:
        problems.append("missing sample_id")
    elif sample_id not in key:
        problems.append(f"unknown sample id {sample_id!r} (not in the key)")
    else:
        expected, title = key[sample_id].get("title"), row.get("title", "")
        if expected is not None and title and " ".join(title.split()) != " ".join(expected.split()):
            problems.append(f"title {title!r} is not {sample_id}'s title {expected!r} (ratings of another sheet?)")
    rater = " ".join(row.get("rater", "").split())
    if not rater:
        problems.append("missing rater name")
    scores = {}
    for criterion in CRITERIA:
        value = row.get(criterion, "")
        if not value:
            problems.append(f"missing {criterion} rating")
        elif not re.fullmatch(r"[+-]?\d+", value):
            problems.append(f"{criterion} rating {value!r} is not a whole number")
        elif not scale_min <= int(value) <= scale_max:
            problems.append(f"{criterion} rating {int(value)} is outside the scale {scale_min}..{scale_max}")
        else:
            scores[criterion] = int(value)
    return (None if problems else Rating(sample_id, rater, scores)), problems


def summarise(ratings: Sequence[Rating], key: dict[str, dict[str, str]], scale_min: int,
              scale_max: int) -> dict[str, Any]:
    """Per model and criterion: mean, sample std (n - 1; null below 2 ratings) and n; raters."""
    models: dict[str, Any] = {}
    for name in LABELS:
        mine = [r for r in ratings if key[r.sample_id]["label"] == name]
        paths = sorted({entry["path"] for entry in key.values() if entry["label"] == name})
        criteria = {c: _stats([r.scores[c] for r in mine]) for c in CRITERIA}
        models[name] = {
            "path": ", ".join(paths),
            "raters": len({r.rater for r in mine}),
            "samples": sum(entry["label"] == name for entry in key.values()),
            "samples_rated": len({r.sample_id for r in mine}),
            "criteria": criteria,
            "overall": _stats([score for r in mine for score in r.scores.values()]),
        }
    difference = {}
    for name in (*CRITERIA, "overall"):
        a, b = (models[m]["overall"] if name == "overall" else models[m]["criteria"][name] for m in (MODEL, BASELINE))
        difference[name] = None if a["mean"] is None or b["mean"] is None else round(a["mean"] - b["mean"], 4)
    return {
        "scale": {"min": scale_min, "max": scale_max},
        "raters": len({r.rater for r in ratings}),
        "ratings": len(ratings),
        "models": models,
        "difference": difference,  # model mean minus baseline mean
    }


def _stats(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": round(statistics.fmean(values), 4), "std": None if std is None else round(std, 4),
            "n": len(values)}

"""Human evaluation: a blind rating sheet of stories from several sources, and the scoring of its ratings.

``sheet``: the model and the baseline write one story per prompt, and any number of other sources join
with stories of their own (real stories, samples of other models: JSON lines of texts); all are shuffled
and given opaque ids (``S01``, ``S02``, ...) so raters cannot tell which source wrote which. The source
of each sample is kept in ``key.json``, apart from the sheet.

``score``: completed rating CSVs (one per rater, or one holding many) are validated row by row against
the key and the scale, then averaged per source and rubric criterion; the raters' agreement is
Krippendorff's alpha (``krippendorff``, ordinal), and each story metric of the sheet's stories is set
against their mean rating by Spearman's rho.

Scoring needs no torch: generation imports it lazily, so ``score`` starts quickly and runs anywhere
the ratings are collected.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, create_model, field_validator
from pydantic_core import PydanticCustomError

from aitale.data.structure import prompt
from aitale.generation.sampling import GenerationSettings
from aitale.templates import render

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
    label: str  # the source (MODEL, BASELINE or another's name): goes to key.json only
    path: str


@dataclass(frozen=True)
class Source:
    """Stories of one source for the sheet: a model's, or texts read from a file."""

    label: str
    path: str
    titles: list[str]
    stories: list[str]


# --- sheet -------------------------------------------------------------------------------


def write_stories(model_dir: str | Path, titles: Sequence[str], settings: GenerationSettings, seed: int) -> list[str]:
    """One story per title from the model saved in ``model_dir``, with ``settings``.

    Story ``i`` is sampled from its own seed derived from ``seed`` and ``i``: the two models
    draw the same random numbers for a title (a paired comparison), while the titles of one
    model do not share an opening. The sheet passes the evaluated model's own settings (its
    generation_config.json) for both models, so that both write under the same ones.
    """
    from aitale.generation.writer import Writer

    written = Writer.load(model_dir).write(
        [prompt(title) for title in titles],
        [settings.but(seed=seed * 1_000_003 + index) for index in range(len(titles))],
    )
    return [clean_story(w.text) for w in written]


def clean_story(text: str) -> str:
    """Unix newlines and no control characters: a small model can emit any byte, a sheet must not."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def text_source(label: str, path: str) -> Source:
    """A source of stories as they are: the JSON lines ``stages.judge`` reads (id, text, title optional)."""
    from aitale.evaluation.judge import TextsError, read_texts

    try:
        texts = read_texts(path)
    except TextsError as err:
        raise RatingsError(f"source {label}: {err}") from None
    return Source(label, str(path), [t.title or "" for t in texts], [clean_story(t.text) for t in texts])


def shuffle_samples(sources: Sequence[Source], seed: int) -> list[Sample]:
    """Samples of every source in a seeded random order with opaque ids."""
    labels = [source.label for source in sources]
    if len(set(labels)) != len(labels) or not all(labels):
        raise RatingsError(f"sources need distinct, non-empty names: {labels}")
    drafts = [
        (source.label, source.path, title, story)
        for source in sources
        for title, story in zip(source.titles, source.stories, strict=True)
    ]
    random.Random(seed).shuffle(drafts)
    width = max(2, len(str(len(drafts))))
    return [
        Sample(f"S{i:0{width}d}", title, story, label, path)
        for i, (label, path, title, story) in enumerate(drafts, start=1)
    ]


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
    """The raters' instructions in Markdown: what to do, the rubric, and how the organiser scores."""
    return render(
        "human_eval_readme.md.j2",
        samples=samples,
        rubric=list(RUBRIC.items()),
        scale_min=scale_min,
        scale_max=scale_max,
    )


def sheet_html(samples: Sequence[Sample], scale_min: int, scale_max: int) -> str:
    """A self-contained form: a number input per story and criterion, and a CSV download button.

    Every text is HTML-escaped; the columns reach the script as JSON in which no text can
    close the ``<script>`` element.
    """
    return render(
        "human_eval_sheet.html.j2",
        samples=samples,
        scale_min=scale_min,
        scale_max=scale_max,
        rubric=[(label(name), text) for name, text in RUBRIC.items()],
        criteria=[(name, label(name)) for name in CRITERIA],
        columns=list(COLUMNS),
        criterion_names=list(CRITERIA),
    )


def label(criterion: str) -> str:
    return criterion.replace("_", " ").capitalize()


# --- score -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rating:
    sample_id: str
    rater: str
    scores: dict[str, int]


def _problem(text: str) -> PydanticCustomError:
    # The text goes in as a value, not as the template: ids and titles may hold braces.
    return PydanticCustomError("rating_row", "{problem}", {"problem": text})


class _RatingCells(BaseModel):
    """The cells of a rating row; :data:`RatingRow` adds one field per criterion.

    Every field defaults to an empty cell and defaults are validated, so a missing cell
    is reported in the words of an empty one. Each problem is one error, its ``msg`` the
    text the user sees; pydantic validates every field, so a row's problems come all at once.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    sample_id: str = ""
    title: str = ""
    rater: str = ""

    @classmethod
    def check(
        cls, cells: dict[str, str], key: dict[str, dict[str, str]], scale_min: int, scale_max: int
    ) -> _RatingCells:
        """The row ``cells`` (stripped, by column) validated against ``key`` and the scale; raises ValidationError."""
        return cls.model_validate(cells, context={"key": key, "scale": (scale_min, scale_max)})

    @field_validator("sample_id")
    @classmethod
    def _known(cls, sample_id: str, info: ValidationInfo) -> str:
        if not sample_id:
            raise _problem("missing sample_id")
        if sample_id not in info.context["key"]:
            raise _problem(f"unknown sample id {sample_id!r} (not in the key)")
        return sample_id

    @field_validator("title")
    @classmethod
    def _of_this_sheet(cls, title: str, info: ValidationInfo) -> str:
        sample_id = info.data.get("sample_id")  # absent when the id was missing or unknown
        expected = info.context["key"][sample_id].get("title") if sample_id else None
        if expected is not None and title and " ".join(title.split()) != " ".join(expected.split()):
            raise _problem(f"title {title!r} is not {sample_id}'s title {expected!r} (ratings of another sheet?)")
        return title

    @field_validator("rater")
    @classmethod
    def _named(cls, rater: str) -> str:
        rater = " ".join(rater.split())
        if not rater:
            raise _problem("missing rater name")
        return rater

    @field_validator(*CRITERIA, mode="before", check_fields=False)
    @classmethod
    def _on_scale(cls, value: object, info: ValidationInfo) -> int:
        criterion, (low, high) = info.field_name, info.context["scale"]
        text = str(value).strip()
        if not text:
            raise _problem(f"missing {criterion} rating")
        if not re.fullmatch(r"[+-]?\d+", text):
            raise _problem(f"{criterion} rating {text!r} is not a whole number")
        if not low <= int(text) <= high:
            raise _problem(f"{criterion} rating {int(text)} is outside the scale {low}..{high}")
        return int(text)

    @property
    def scores(self) -> dict[str, int]:
        return {criterion: getattr(self, criterion) for criterion in CRITERIA}


RatingRow = create_model(
    "RatingRow",
    __base__=_RatingCells,
    __module__=__name__,
    __doc__="One row of a ratings CSV: sample_id, title, rater and an int per criterion (see ``check``).",
    **dict.fromkeys(CRITERIA, (int, "")),
)


def read_key(path: str | Path) -> dict[str, dict[str, str]]:
    path = Path(path)
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RatingsError(f"{path}: key file not found") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise RatingsError(f"{path}: not a JSON key written by the sheet command: {err}") from None
    valid = (
        isinstance(key, dict)
        and key
        and all(
            isinstance(entry, dict)
            and isinstance(entry.get("label"), str)
            and entry["label"]
            and isinstance(entry.get("path"), str)
            for entry in key.values()
        )
    )
    if not valid:
        raise RatingsError(
            f"{path}: not a key written by the sheet command (expected sample id -> {{label: source, path, title}})"
        )
    return key


def read_ratings(
    paths: Sequence[str | Path], key: dict[str, dict[str, str]], scale_min: int, scale_max: int
) -> list[Rating]:
    """Every rating row of ``paths``, validated; raises :class:`RatingsError` listing each bad row.

    Rows are numbered as a spreadsheet shows them: the header is row 1. Fully blank rows
    are skipped. A rater is identified by the ``rater`` cell, with spaces normalised, so one
    rater's ratings may be split over several files but may not rate a sample twice.
    """
    problems: list[str] = []
    ratings: list[Rating] = []
    seen: dict[tuple[str, str], str] = {}
    for path in map(Path, paths):
        rows = _csv_rows(path, problems)
        if rows is None:
            continue
        header = [cell.strip() for cell in rows[0]]
        for number, cells in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in cells):
                continue
            where = f"{path}: row {number}"
            if len(cells) > len(header):
                problems.append(f"{where}: {len(cells)} cells but only {len(header)} columns")
                continue
            row = dict(zip(header, (cell.strip() for cell in cells)))
            try:
                checked = RatingRow.check(row, key, scale_min, scale_max)
            except ValidationError as err:
                problems += [f"{where}: {error['msg']}" for error in err.errors()]
                continue
            rating = Rating(checked.sample_id, checked.rater, checked.scores)
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


def summarise(
    ratings: Sequence[Rating], key: dict[str, dict[str, str]], scale_min: int, scale_max: int
) -> dict[str, Any]:
    """Per source and criterion: mean, sample std (n - 1; null below 2 ratings) and n; raters."""
    models: dict[str, Any] = {}
    found = {entry["label"] for entry in key.values()}
    for name in [*(label for label in LABELS if label in found), *sorted(found - set(LABELS))]:
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
    difference: dict[str, float | None] = dict.fromkeys((*CRITERIA, "overall"))
    for name in difference if {MODEL, BASELINE} <= found else ():
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
    return {"mean": round(statistics.fmean(values), 4), "std": None if std is None else round(std, 4), "n": len(values)}


def agreement(ratings: Sequence[Rating], scale_min: int, scale_max: int) -> dict[str, Any]:
    """Krippendorff's alpha (ordinal, over the scale's values) between the raters, per criterion and for the
    mean of a rater's criteria (interval); null with fewer than two raters or nothing pairable."""
    import krippendorff
    import numpy as np

    raters = sorted({r.rater for r in ratings})
    samples = sorted({r.sample_id for r in ratings})
    if len(raters) < 2:
        return {"raters": len(raters), "alpha": dict.fromkeys((*CRITERIA, "overall"))}
    grid = np.full((len(CRITERIA) + 1, len(raters), len(samples)), np.nan)
    for r in ratings:
        i, j = raters.index(r.rater), samples.index(r.sample_id)
        grid[: len(CRITERIA), i, j] = [r.scores[c] for c in CRITERIA]
        grid[-1, i, j] = statistics.fmean(r.scores.values())
    domain = list(range(scale_min, scale_max + 1))
    alpha = {}
    for k, name in enumerate((*CRITERIA, "overall")):
        pairable = (np.sum(~np.isnan(grid[k]), axis=0) >= 2).any()
        values = grid[k][~np.isnan(grid[k])]
        if not pairable or len(set(values.tolist())) < 2:
            alpha[name] = None  # nothing rated twice, or one value everywhere: alpha is undefined
            continue
        level, kind = ("interval", {}) if name == "overall" else ("ordinal", {"value_domain": domain})
        alpha[name] = round(float(krippendorff.alpha(reliability_data=grid[k], level_of_measurement=level, **kind)), 4)
    return {"raters": len(raters), "level": "ordinal (overall: interval)", "alpha": alpha}


def metric_correlation(ratings: Sequence[Rating], stories: dict[str, str]) -> dict[str, Any]:
    """Spearman's rho of each story metric of the rated stories against their mean rating (over raters and
    criteria); null where fewer than three stories are rated or either side is constant."""
    from scipy.stats import spearmanr

    from aitale.evaluation.metrics import HEADLINE, screenless_metrics

    by_sample: dict[str, list[float]] = {}
    for r in ratings:
        by_sample.setdefault(r.sample_id, []).append(statistics.fmean(r.scores.values()))
    ids = sorted(by_sample)
    mean_rating = [statistics.fmean(by_sample[i]) for i in ids]
    found = {}
    for name, metric in screenless_metrics().items():
        scores = [metric(stories[i]) for i in ids]
        constant = len(set(scores)) < 2 or len(set(mean_rating)) < 2
        rho, p = (None, None) if len(ids) < 3 or constant else spearmanr(scores, mean_rating)
        found[name] = {
            "headline": name in HEADLINE,
            "rho": None if rho is None else round(float(rho), 4),
            "p": None if p is None else round(float(p), 4),
        }
    return {"stories": len(ids), "rating": "mean over raters and criteria", "spearman": found}


def sheet_stories(path: str | Path) -> dict[str, str]:
    """sample id -> story, from the sheet.csv written beside the key."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return {row["sample_id"]: row["story"] for row in csv.DictReader(handle)}
    except (OSError, KeyError, csv.Error) as err:
        raise RatingsError(f"{path}: the sheet's stories cannot be read ({err})") from None


def _csv_rows(path: Path, problems: list[str]) -> list[list[str]] | None:
    """The rows of a ratings CSV whose header has the required columns; else None, with the problem added."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        problems.append(f"{path}: file not found")
        return None
    except UnicodeDecodeError:
        problems.append(f"{path}: not UTF-8 text (save the spreadsheet as CSV UTF-8)")
        return None
    except csv.Error as err:
        problems.append(f"{path}: not a readable CSV file: {err}")
        return None
    if not rows:
        problems.append(f"{path}: empty file (expected the columns of sheet.csv)")
        return None
    header = [cell.strip() for cell in rows[0]]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        problems.append(
            f"{path}: row 1: missing column(s) {', '.join(missing)} "
            f"(expected the columns of sheet.csv: {','.join(COLUMNS)})"
        )
        return None
    return rows

"""Texts to judge, read from JSON lines: every line checked before any is scored, every bad line named.

A line is an object with ``id`` (a string or a whole number, kept in the scores), ``text`` (the story), and
optionally ``age_group`` (one of the age groups, the one age-appropriateness judges for; default 3-5) and
``title``. Any other key is an error, so that a misspelt ``age-group`` is not silently judged for 3-5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from aitale.evaluation.metrics import DEFAULT_AGE_GROUP, judge
from aitale.labels import AGE_GROUPS

MAX_PROBLEMS_SHOWN = 20


class TextsError(ValueError):
    """The texts file cannot be judged; the message names each bad line."""


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr | StrictInt
    text: StrictStr
    age_group: StrictStr = DEFAULT_AGE_GROUP
    title: StrictStr | None = None


@dataclass(frozen=True)
class Text:
    id: str | int
    text: str
    age_group: str
    title: str | None


def read_texts(path: str | Path) -> list[Text]:
    """The lines of ``path``, validated; raises :class:`TextsError` naming every bad line (numbered from 1)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TextsError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise TextsError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    texts, problems, seen = [], [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        found = _parse(line)
        if isinstance(found, str):
            problems.append(f"line {number}: {found}")
        elif found.id in seen:
            problems.append(f"line {number}: id {found.id!r} already on line {seen[found.id]}")
        else:
            seen[found.id] = number
            texts.append(found)
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN] + [f"... and {len(problems) - MAX_PROBLEMS_SHOWN} more"] * (
            len(problems) > MAX_PROBLEMS_SHOWN
        )
        raise TextsError(f"{path}: {len(problems)} bad line(s):\n" + "\n".join(f"  {p}" for p in shown))
    if not texts:
        raise TextsError(f"{path}: no texts (expected one JSON object per line, with id and text)")
    return texts


def _parse(line: str) -> Text | str:
    """One line as a :class:`Text`, or what is wrong with it."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg} at column {err.colno})"
    if not isinstance(data, dict):
        return f"expected a JSON object with id and text, got {type(data).__name__}"
    try:
        checked = _Line.model_validate(data)
    except ValidationError as err:
        return "; ".join(_problem(error) for error in err.errors())
    if checked.age_group not in AGE_GROUPS:
        return f"age_group {checked.age_group!r} is not one of {', '.join(AGE_GROUPS)}"
    return Text(checked.id, checked.text, checked.age_group, checked.title)


def _problem(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"][:1]) or "line"
    if error["type"] == "extra_forbidden":
        return f"unknown key {where!r} (expected id, text, age_group, title)"
    if error["type"] == "missing":
        return f"missing {where}"
    return f"{where}: {error['msg'].lower()}"


def scores(texts: list[Text], screen) -> list[dict]:
    """One row per text: its id and every story metric."""
    return [{"id": t.id, **judge(t.text, screen, t.age_group)} for t in texts]

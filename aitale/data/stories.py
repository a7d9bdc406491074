"""The custom-written AI Tale stories: Markdown files with YAML front matter under ``data/stories``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aitale.data.normalize import normalize_text
from aitale.data.records import Story, slugify
from aitale.data.text import word_count
from aitale.errors import SourceError
from aitale.labels import AGE_GROUPS, STYLES, THEMES

COLLECTION = "ai-tale"


class FrontMatter(BaseModel):
    """What a story file declares about itself, between its two ``---`` lines."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, pattern=r"\S")
    age_group: Literal[AGE_GROUPS]  # type: ignore[valid-type]
    themes: list[Literal[THEMES]] = Field(min_length=1)  # type: ignore[valid-type]
    style: Literal[STYLES]  # type: ignore[valid-type]

    @field_validator("age_group", mode="before")
    @classmethod
    def _age_as_text(cls, value):  # YAML reads an unquoted 9-12 as text but would read 12 as a number
        return str(value) if isinstance(value, int) else value


def load_stories(folder: str | Path) -> list[Story]:
    """Every ``*.md`` story in ``folder``, in file-name order so that the result is reproducible."""
    paths = sorted(Path(folder).glob("*.md"))
    if not paths:
        raise SourceError(f"{folder}: no *.md stories found")
    return [_load_story(path) for path in paths]


def _load_story(path: Path) -> Story:
    try:
        text = path.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as err:
        raise SourceError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start}); save it as UTF-8") from None
    parts = text.split("---\n", 2) if text.startswith("---\n") else []
    if len(parts) != 3:
        raise SourceError(f"{path}: expected YAML front matter between '---' lines, then the story")
    try:
        meta = FrontMatter.model_validate(yaml.safe_load(parts[1]) or {})
    except yaml.YAMLError as err:
        raise SourceError(f"{path}: front matter is not valid YAML: {err}") from None
    except ValidationError as err:
        problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in err.errors())
        raise SourceError(f"{path}: {problems}") from None
    body = normalize_text(parts[2])
    if word_count(body) == 0:
        raise SourceError(f"{path}: the story is empty")
    return Story(
        id=f"{COLLECTION}/{path.stem}",
        title=meta.title.strip(),
        text=body,
        source="custom",
        collection=COLLECTION,
        age_group=meta.age_group,
        themes=list(meta.themes),
        style=meta.style,
        tale=f"{COLLECTION}/{slugify(meta.title)}",
    )

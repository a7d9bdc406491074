"""The custom-written AI Tale stories: Markdown files with YAML front matter under ``data/stories``."""

from __future__ import annotations

from pathlib import Path

import yaml

from aitale.data.normalize import normalize_text, word_count
from aitale.data.records import AGE_GROUPS, STYLES, Story, slugify
from aitale.errors import SourceError

COLLECTION = "ai-tale"


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
        meta = yaml.safe_load(parts[1]) or {}
    except yaml.YAMLError as err:
        raise SourceError(f"{path}: front matter is not valid YAML: {err}") from None
    body = normalize_text(parts[2])
    _check(path, meta, body)
    return Story(
        id=f"{COLLECTION}/{path.stem}",
        title=meta["title"].strip(),
        text=body,
        source="custom",
        collection=COLLECTION,
        age_group=str(meta["age_group"]),
        themes=list(meta["themes"]),
        style=meta["style"],
        tale=f"{COLLECTION}/{slugify(meta['title'])}",
    )


def _check(path: Path, meta: dict, body: str) -> None:
    problems = []
    if not isinstance(meta.get("title"), str) or not meta["title"].strip():
        problems.append("'title' must be a non-empty string")
    if str(meta.get("age_group")) not in AGE_GROUPS:
        problems.append(f"'age_group' must be one of {', '.join(AGE_GROUPS)}")
    themes = meta.get("themes")
    if not isinstance(themes, list) or not themes or not all(isinstance(t, str) for t in themes):
        problems.append("'themes' must be a non-empty list of words")
    if meta.get("style") not in STYLES:
        problems.append(f"'style' must be one of {', '.join(STYLES)}")
    if unknown := set(meta) - {"title", "age_group", "themes", "style"}:
        problems.append(f"unknown keys {sorted(unknown)}")
    if word_count(body) == 0:
        problems.append("the story is empty")
    if problems:
        raise SourceError(f"{path}: " + "; ".join(problems))

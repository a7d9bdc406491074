"""The story record: one per story, from loading through to ``data/processed/*.jsonl``."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Story:
    id: str  # unique across the dataset, e.g. "ai-tale/the-lantern-fox" or "pg503/the-bronze-ring"
    title: str
    text: str  # plain normalised prose: paragraphs separated by one blank line
    source: str  # "custom" or "gutenberg"
    collection: str  # "ai-tale" or a slug of the book's title
    age_group: str
    themes: list[str]
    style: str
    themes_source: str = "given"  # "given" (front matter), "predicted" (the theme tagger) or "none"
    tale: str = ""  # stories that tell one tale share this key and always land in one split
    augmented: bool = False
    augmentation: str | None = None  # which method made this record, when augmented
    structured: str = ""  # the training text, marked with the structure tokens
    words: int = field(default=0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "untitled"

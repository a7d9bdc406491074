"""The hand-labelled passages the screen is fitted and measured on (data/safety/passages.jsonl; data card beside it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from aitale.errors import SourceError
from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES


class Passage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str
    source: str
    categories: list[Literal[SAFETY_CATEGORIES]]  # type: ignore[valid-type]
    youngest: Literal[AGE_GROUPS] | None  # type: ignore[valid-type]  # None: for no child
    kind: str
    note: str
    split: Literal["train", "test"]

    def unsafe_for(self, age_group: str) -> bool:
        return self.youngest is None or AGE_GROUPS.index(self.youngest) > AGE_GROUPS.index(age_group)


def load_passages(path: str | Path) -> list[Passage]:
    found = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        try:
            found.append(Passage.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as err:
            raise SourceError(f"{path}:{number}: not a labelled passage ({err})") from None
    return found

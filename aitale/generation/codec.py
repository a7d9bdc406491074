"""Text to token ids and back with a model folder's ``tokenizer.json``, without transformers or torch.

The structure and control tokens are added tokens of that file, so they are matched whole
in the text; decoding drops them (and every other special token), as
``tokenizer.decode(..., skip_special_tokens=True)`` does.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from aitale.data.structure import ENDING, MIDDLE
from aitale.generation.decoders import ModelFileError


class Codec:
    def __init__(self, folder: str | Path):
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise ModelFileError(f"{path}: no tokenizer in this model folder; rerun `dvc repro package export`")
        self.tokenizer = Tokenizer.from_file(str(path))
        self.special = {
            self.tokenizer.token_to_id(t.content)
            for t in self.tokenizer.get_added_tokens_decoder().values()
            if t.special
        }
        self.part_breaks = {self.token_id(t) for t in (MIDDLE, ENDING)} - {None}

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i not in self.special], skip_special_tokens=True)

    def decode_story(self, ids: list[int]) -> str:
        """A written story as paragraphs: its part markers become paragraph breaks, other special tokens go."""
        parts, current = [], []
        for i in ids:
            if i in self.part_breaks:
                parts.append(current)
                current = []
            elif i not in self.special:
                current.append(i)
        parts.append(current)
        texts = (self.tokenizer.decode(part, skip_special_tokens=True).strip() for part in parts)
        return "\n\n".join(text for text in texts if text)

    def token_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

"""A model folder ready to write: its decoder, its tokenizer and its default settings.

writer = Writer.load("models/storyteller")                 # PyTorch
writer = Writer.load("models/onnx", variant="onnx-int8")   # onnxruntime, no torch
[done] = writer.write([prompt("The Lantern Fox")], [writer.defaults.but(seed=7)])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aitale.generation.batch import LENGTH, generate
from aitale.generation.codec import Codec
from aitale.generation.config import default_settings
from aitale.generation.decoders import Decoder, load_decoder
from aitale.generation.sampling import GenerationSettings


@dataclass(frozen=True)
class Written:
    text: str  # the new text, special tokens dropped
    tokens: list[int]
    prompt_tokens: int
    finish_reason: str

    @property
    def usage(self) -> dict[str, int]:
        """OpenAI's ``usage`` of the row."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": len(self.tokens),
            "total_tokens": self.prompt_tokens + len(self.tokens),
        }


@dataclass(frozen=True)
class Screened(Written):
    """A row's text after the content screen judged it: withheld (empty) unless ``safe``."""

    safe: bool
    verdict: dict[str, Any]


class Writer:
    def __init__(self, decoder: Decoder, codec: Codec, defaults: GenerationSettings, name: str):
        self.decoder, self.codec, self.defaults, self.name = decoder, codec, defaults, name

    @classmethod
    def load(cls, folder: str | Path, variant: str = "pytorch", threads: int | None = None) -> Writer:
        return cls(load_decoder(folder, variant, threads), Codec(folder), default_settings(folder), str(folder))

    @property
    def context(self) -> int | None:
        return self.decoder.context

    def write(
        self,
        prompts: Sequence[str],
        settings: Sequence[GenerationSettings],
        *,
        max_batch: int = 16,
        keep_last: int | None = None,
        progress: str | None = None,
        as_story: bool = False,
        masks: Sequence | None = None,
    ) -> list[Written]:
        """Each prompt continued with its settings, ``max_batch`` rows at a time.

        ``keep_last`` keeps only a prompt's last tokens (room for a continuation of a long text);
        ``progress`` names a progress bar of the stories written; ``as_story`` turns the part
        markers into paragraph breaks; ``masks`` (one per prompt) the tokens each may never write
        (:class:`aitale.safety.mask.TokenMask`, for the request's age group).
        """
        decode = self.codec.decode_story if as_story else self.codec.decode
        encoded = [self.codec.encode(p)[-keep_last:] if keep_last else self.codec.encode(p) for p in prompts]
        with tqdm(total=len(encoded), desc=progress, unit="story", disable=progress is None) as bar:
            rows = generate(
                self.decoder,
                encoded,
                list(settings),
                max_batch=max_batch,
                decode=self.codec.decode,
                on_end=lambda _: bar.update(),
                masks=masks,
            )
        return [
            Written(
                text=row.stop_text if row.stop_text is not None else decode(row.tokens).strip(),
                tokens=row.tokens,
                prompt_tokens=len(row.prompt),
                finish_reason=row.finish_reason or LENGTH,
            )
            for row in rows
        ]

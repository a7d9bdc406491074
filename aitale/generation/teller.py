"""A model ready to tell screened stories: a :class:`~aitale.generation.writer.Writer` and the content screen."""

from __future__ import annotations

from pathlib import Path

from aitale.generation.batch import STOP
from aitale.generation.decoders import weights_sha256
from aitale.generation.story import REDRAWS, Story, StoryRequest, finish, screened
from aitale.generation.writer import Writer


class Teller:
    def __init__(self, writer: Writer, screen, model: str, model_sha: str):
        self.writer, self.screen, self.model, self.model_sha = writer, screen, model, model_sha

    @classmethod
    def load(cls, folder: str | Path, variant: str, screen_folder: str | Path) -> Teller:
        from aitale.safety import load_screen

        writer = Writer.load(folder, variant)
        return cls(
            writer, load_screen(screen_folder), f"{Path(folder).name}:{variant}", weights_sha256(folder, variant)
        )

    def tell(self, request: StoryRequest, seed: int, redraws: int = REDRAWS) -> Story:
        settings = self.writer.defaults
        if request.max_tokens is not None:
            settings = settings.but(
                max_new_tokens=request.max_tokens, min_new_tokens=min(settings.min_new_tokens, request.max_tokens)
            )

        def write(seeds: list[int]) -> list[tuple[str, str, dict]]:
            written = self.writer.write(
                [request.prompt()] * len(seeds), [settings.but(seed=s) for s in seeds], as_story=True
            )
            return [
                (
                    finish(w.text, w.finish_reason == STOP),
                    w.finish_reason,
                    {
                        "prompt_tokens": w.prompt_tokens,
                        "completion_tokens": len(w.tokens),
                        "total_tokens": w.prompt_tokens + len(w.tokens),
                    },
                )
                for w in written
            ]

        return screened(request, seed, write, self.screen, model=self.model, model_sha=self.model_sha, redraws=redraws)

"""A model ready to tell screened stories (``tell``): a :class:`~aitale.generation.writer.Writer`, the content
screen, and the story policy of :func:`~aitale.generation.story.tell_story`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from aitale.generation.batch import STOP
from aitale.generation.decoders import weights_sha256
from aitale.generation.sampling import GenerationSettings
from aitale.generation.story import REDRAWS, StoryRequest, ToldStory, finish, tell_story
from aitale.generation.writer import Screened, Writer

if TYPE_CHECKING:
    from aitale.safety import Screen


class Teller:
    def __init__(self, writer: Writer, screen: Screen, model: str, model_sha: str):
        from aitale.safety.mask import AgeMasks, token_texts

        self.writer, self.screen, self.model, self.model_sha = writer, screen, model, model_sha
        # the second line of defence: the words the age group's policy never allows are never written
        self.masks = AgeMasks(token_texts(writer.codec.tokenizer), screen.rules)

    @classmethod
    def load(cls, folder: str | Path, variant: str, screen_folder: str | Path) -> Teller:
        from aitale.safety import load_screen

        writer = Writer.load(folder, variant)
        return cls(
            writer, load_screen(screen_folder), f"{Path(folder).name}:{variant}", weights_sha256(folder, variant)
        )

    def tell(self, request: StoryRequest, seed: int, redraws: int = REDRAWS) -> ToldStory:
        text = request.prompt()
        context = self.writer.context
        room = None if context is None else context - len(self.writer.codec.encode(text))
        # a title past the context is left to the batch, which keeps the prompt's latest half
        settings = request.settings(self.writer.defaults, room if room is None or room > 0 else None)

        async def draw(drawn: GenerationSettings) -> Screened:
            mask = self.masks.for_age(request.age_group)
            [written] = self.writer.write([text], [drawn], as_story=True, masks=[mask])
            story = finish(written.text, written.finish_reason == STOP)
            verdict = self.judge(request.shown(story), request.age_group)
            return Screened(
                story, written.tokens, written.prompt_tokens, written.finish_reason, verdict["safe"], verdict
            )

        told = tell_story(
            request, seed, settings, draw, judge=self.judge, model=self.model, model_sha=self.model_sha, redraws=redraws
        )
        return asyncio.run(told)

    def judge(self, text: str, age_group: str) -> dict:
        return self.screen.judge(text, age_group).to_json()

"""``POST /v1/stories``: a screened story for a child, by the story policy of ``tell`` and the page
(:func:`aitale.generation.story.tell_story`), each draw a row of the running batch."""

from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aitale.generation.sampling import GenerationSettings
from aitale.generation.story import SEED_RANGE, StoryRequest, tell_story
from aitale.generation.writer import Screened
from aitale.serve.answers import Answer, Emit, past_context, respond
from aitale.serve.state import Server

REDRAW_MESSAGE = "that draw failed the content screen; writing another"

router = APIRouter()


@router.post("/v1/stories")
async def stories(body: StoryRequest, request: Request, server: Server) -> Response:
    s = server.service
    seed = body.seed if body.seed is not None else secrets.randbelow(SEED_RANGE)
    fields = {"route": "stories", **body.model_dump(exclude={"stream"}), "redraws": server.settings.redraws}
    deadline = time.monotonic() + server.settings.request_timeout_s
    prompt: dict = {}

    def prepare() -> Response | None:
        prompt["ids"] = s.codec.encode(body.prompt())
        prompt["room"] = s.room(prompt["ids"])
        return too_long_for_context(body, prompt["room"], s.context)

    async def produce(emit: Emit | None) -> dict:
        async def release(text: str) -> None:
            await emit({"object": "story.chunk", "text": text})

        async def redrawing(attempt: int) -> None:
            await emit({"object": "story.retry", "attempt": attempt, "message": REDRAW_MESSAGE})

        async def draw(settings: GenerationSettings) -> Screened:
            return await s.write(
                prompt["ids"],
                settings,
                age_group=body.age_group,
                story=True,
                deadline=deadline,
                repeatable=body.seed is not None,
                release=release if emit else None,
                shown=body.shown,  # the title above the story, as the page shows it
            )

        story = await tell_story(
            body,
            seed,
            body.settings(s.defaults, prompt["room"]),
            draw,
            judge=s.judge,
            model=server.settings.model_name,
            model_sha=s.sha256,
            redraws=server.settings.redraws,
            on_redraw=redrawing if emit else None,
        )
        return story.to_json()

    answer = Answer(
        name="story",
        key=server.cache_key(request, fields) if body.seed is not None else None,
        prepare=prepare,
        produce=produce,
        whole=lambda value, cached: {**value, "cached": cached},
        replay=lambda value: [
            {"object": "story.chunk", "text": value["text"]},
            {**value, "object": "story", "cached": True},
        ],
        tail=lambda value: [{**value, "object": "story", "cached": False}],
        text=lambda value: value["text"],
    )
    return await respond(server, request, answer, body.stream)


def too_long_for_context(body: StoryRequest, room: int | None, context: int | None) -> Response | None:
    """The 400 of a title that leaves the model's context no room, or less than ``max_tokens``."""
    if room is not None and room < 1:
        return past_context(f"the title is too long for the model's context of {context} tokens", "title")
    if body.max_tokens is not None and room is not None and body.max_tokens > room:
        return past_context(
            f"max_tokens ({body.max_tokens}) is past the room the model's context leaves "
            f"({room} tokens after the prompt)",
            "max_tokens",
        )
    return None

"""A story for one child: the request, its prompt and settings, the finished text, and THE story policy.

The same path for ``tell``, the page and ``/v1/stories`` (:func:`tell_story`): a :class:`StoryRequest`
(validated: known age group, themes and style; style and themes may be left out) has its title screened
first, then becomes a prompt with its control tokens (the title escaped, so typed control tokens stay
text) and the generation settings of the request over the model's; the generation core writes a draw;
the text ends at end-of-text or at its last full sentence, never mid-word (:func:`finish`); the content
screen judges what the child sees, the title above the story (:meth:`StoryRequest.shown`), for the
requested age group, and a story that fails is re-drawn with the next seed, at most ``redraws`` times
(never more than :data:`MAX_REDRAWS`), then refused with the screen's reasons (:class:`Refused`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aitale.data.structure import prompt
from aitale.generation.sampling import GenerationSettings
from aitale.generation.writer import Screened
from aitale.labels import AGE_GROUPS, STYLES, THEMES

REDRAWS = 3  # a story that fails the screen is written again with another seed at most this often
MAX_REDRAWS = 10  # the most any caller may ask for (``tell --redraws``, the server's ``redraws``)
SEED_STEP = 1_000_003  # attempt k of seed s uses s + k * SEED_STEP
SEED_RANGE = 2**63
# A sentence ends at its mark (and any closing quote) followed by white space or the end of the text.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


class StoryRequest(BaseModel):
    """What a story is asked for (the body of ``POST /v1/stories``; ``tell``'s flags)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, max_length=200, pattern=r"\S", description="the story's title")
    age_group: Literal[AGE_GROUPS] = Field(description="the child's age group")  # type: ignore[valid-type]
    themes: list[Literal[THEMES]] = Field(
        default_factory=list,
        max_length=3,  # type: ignore[valid-type]
        description="what the story is about (up to three)",
    )
    style: Literal[STYLES] | None = Field(  # type: ignore[valid-type]
        None, description="fairy tale, fable or bedtime story (left out: any, the story unconditioned on style)"
    )
    seed: int | None = Field(None, ge=0, lt=SEED_RANGE, description="the same seed writes the same story")
    max_tokens: int | None = Field(None, ge=1, description="longest story in tokens (default: the model's)")
    stream: bool = Field(False, description="send the story as it is written (server-sent events)")

    def prompt(self) -> str:
        return prompt(self.title.strip(), self.age_group, self.style, self.themes)

    @property
    def unconditioned(self) -> list[str]:
        """The labels left out, which the story is written without (the prompt has no token for them)."""
        return [name for name, given in (("style", self.style), ("themes", self.themes)) if not given]

    def shown(self, text: str) -> str:
        """What a child sees, and so what the content screen judges: the title above the story."""
        return f"{self.title.strip()}\n\n{text}"

    def settings(self, defaults: GenerationSettings, room: int | None) -> GenerationSettings:
        """The draws' settings: ``max_tokens`` over the model's defaults, within ``room`` new tokens."""
        asked = defaults if self.max_tokens is None else defaults.but(max_new_tokens=self.max_tokens)
        return asked.within(room)


@dataclass
class ToldStory:
    """A finished story, as ``tell --format json`` prints it and ``/v1/stories`` returns it."""

    id: str
    title: str
    text: str
    age_group: str
    themes: list[str]
    style: str | None
    model: str
    finish_reason: str
    usage: dict[str, int]
    seed: int
    safety: dict[str, Any]
    cached: bool = False
    attempts: int = 1
    unconditioned: list[str] = field(default_factory=list)  # labels left out of the request, and so the prompt

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Refused(Exception):
    """Every draw failed the screen: nothing is shown, the reasons are."""

    request: StoryRequest
    attempts: int
    verdicts: list[dict] = field(default_factory=list)

    @property
    def title(self) -> bool:
        """The title itself failed the screen (nothing was written)."""
        return self.attempts == 0

    def __str__(self) -> str:
        reasons = sorted({reason.get("category", "?") for v in self.verdicts for reason in v.get("reasons", [])})
        flagged = f"(flagged: {', '.join(reasons) or 'unsafe'})"
        if self.title:
            return f"the title does not pass the content screen for ages {self.request.age_group} {flagged}"
        return (
            f"no story for {self.request.title!r} passed the content screen for ages {self.request.age_group} "
            f"in {self.attempts} attempts {flagged}"
        )


def sentence_end(text: str, *, written: bool = True) -> int:
    """Where the text's last full sentence ends (0: none). While it is still being written (``written``
    False), a mark at the very end is not one yet: the next token may add another mark or a quote."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if written or m.end() < len(text)]
    return ends[-1] if ends else 0


def finish(text: str, ended: bool) -> str:
    """The story as shown: whole when the model ended it, else cut after its last full sentence (or last word)."""
    text = text.strip()
    if ended or not text:
        return text
    if cut := sentence_end(text):
        return text[:cut].strip()
    return text.rsplit(None, 1)[0] if " " in text else text


def story_id(model_sha: str, request: StoryRequest, seed: int) -> str:
    key = json.dumps(
        {"model": model_sha, **request.model_dump(exclude={"stream", "seed"}), "seed": seed}, sort_keys=True
    )
    return "story-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def attempt_seeds(seed: int, redraws: int) -> list[int]:
    return [(seed + k * SEED_STEP) % SEED_RANGE for k in range(redraws + 1)]


async def tell_story(
    request: StoryRequest,
    seed: int,
    settings: GenerationSettings,
    draw: Callable[[GenerationSettings], Awaitable[Screened]],
    *,
    judge: Callable[[str, str], dict[str, Any]],
    model: str,
    model_sha: str,
    redraws: int = REDRAWS,
    on_redraw: Callable[[int], Awaitable[None]] | None = None,
) -> ToldStory:
    """The first draw that passes the screen. The title is judged first (``judge(text, age_group)``, the
    screen's verdict as JSON): a title that fails is refused before anything is written. ``draw`` writes the
    request's prompt with the settings it is given (``settings`` with each attempt's seed), ends it with
    :func:`finish` and screens :meth:`StoryRequest.shown`; ``on_redraw`` hears of each attempt that failed.
    The draws are written one at a time, so a story that passes at once costs one generation."""
    if not 0 <= redraws <= MAX_REDRAWS:
        raise ValueError(f"redraws must be 0 to {MAX_REDRAWS}, not {redraws}")
    title = judge(request.title.strip(), request.age_group)
    if not title["safe"]:
        raise Refused(request, 0, [title])
    verdicts = []
    for attempt, draw_seed in enumerate(attempt_seeds(seed, redraws), start=1):
        drawn = await draw(settings.but(seed=draw_seed))
        verdicts.append(drawn.verdict)
        if drawn.safe:
            return ToldStory(
                id=story_id(model_sha, request, seed),
                title=request.title.strip(),
                text=drawn.text,
                age_group=request.age_group,
                themes=list(request.themes),
                style=request.style,
                model=model,
                finish_reason=drawn.finish_reason,
                usage=drawn.usage,
                seed=seed,
                safety={**drawn.verdict, "attempts": attempt},
                attempts=attempt,
                unconditioned=request.unconditioned,
            )
        if on_redraw is not None:
            await on_redraw(attempt)
    raise Refused(request, len(verdicts), verdicts)

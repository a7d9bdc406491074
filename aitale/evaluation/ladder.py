"""The quality ladder: a real story and three copies of it, each worse than the last, that a story metric must rank.

Rungs, best first: ``story`` (the text as written); ``sentences_shuffled`` (its sentences in a random order,
paragraph sizes kept); ``words_shuffled`` (each sentence's words in a random order); ``babble`` (each sentence's
words drawn at random from the whole story's word counts). Rungs 3 and 4 keep every sentence's length and its
punctuation where it stood, and start each sentence with a capital, so a metric cannot tell them apart by form
alone. Every rung is seeded per story, so a ladder is the same on every run.

A metric's score on a story is Kendall's tau-b between its four scores and the rungs' order (1: in order; a tie
counts half; a metric giving all four the same score gets 0). Model samples can join as extra rungs between the
story and the babble (``model_rungs``): they are not copies of a story, so they are ranked by their mean scores.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from statistics import fmean

from scipy.stats import kendalltau

from aitale.data.text import paragraphs, split_sentences
from aitale.evaluation.corruptions import shuffle_sentences

RUNGS = ("story", "sentences_shuffled", "words_shuffled", "babble")
GOAL = 0.8  # the mean tau every headline metric must reach
_TOKEN = re.compile(r"^(\W*)(.*?)(\W*)$")  # a whitespace token: leading marks, the word, trailing marks

Metric = Callable[[str], float]


def rungs(text: str, seed: int | str) -> dict[str, str]:
    """The four rungs of ``text``, seeded by ``seed`` (a story's own seed: its index or id)."""

    def rng(rung: str) -> random.Random:
        return random.Random(f"{seed}/{rung}")

    return {
        "story": text,
        "sentences_shuffled": shuffle_sentences(text, rng("sentences_shuffled")),
        "words_shuffled": _refill(text, lambda words: _shuffled(words, rng("words_shuffled"))),
        "babble": _refill(text, _babbler(text, rng("babble"))),
    }


def _shuffled(words: list[str], rng: random.Random) -> list[str]:
    words = list(words)
    rng.shuffle(words)
    return words


def _babbler(text: str, rng: random.Random) -> Callable[[list[str]], list[str]]:
    """Draws as many words as asked for from the story's word counts (sorted, so the draw is seeded alone)."""
    pool = sorted(word for paragraph in _slots(text) for sentence in paragraph for word in sentence[1])
    return lambda words: [rng.choice(pool) for _ in words] if pool else list(words)


def _slots(text: str) -> list[list[tuple[list[tuple[str, str, str]], list[str]]]]:
    """Per paragraph and sentence: its tokens as (leading marks, word, trailing marks), and its words as they
    would stand mid-sentence (a sentence's first word lower-cased unless it is "I" or written capitalised
    elsewhere inside a sentence, as a name is)."""
    parsed = [[[_TOKEN.match(t).groups() for t in s.split()] for s in split_sentences(p)] for p in paragraphs(text)]
    inner = {word for p in parsed for s in p for _, word, _ in s[1:] if word[:1].isupper()}
    out = []
    for paragraph in parsed:
        out.append([])
        for tokens in paragraph:
            words = [word for _, word, _ in tokens if word]
            if words and words[0] != "I" and words[0] not in inner:
                words[0] = words[0][:1].lower() + words[0][1:]
            out[-1].append((tokens, words))
    return out


def _refill(text: str, reorder: Callable[[list[str]], list[str]]) -> str:
    """``text`` with each sentence's words replaced by ``reorder(words)``, marks and capitals kept in place."""
    paragraphs_out = []
    for paragraph in _slots(text):
        sentences_out = []
        for tokens, words in paragraph:
            new = iter(reorder(words))
            filled = [f"{lead}{next(new) if word else ''}{trail}" for lead, word, trail in tokens]
            sentences_out.append(" ".join(_capitalise_first(filled)))
        paragraphs_out.append(" ".join(sentences_out))
    return "\n\n".join(paragraphs_out)


def _capitalise_first(tokens: list[str]) -> list[str]:
    for i, token in enumerate(tokens):
        for j, char in enumerate(token):
            if char.isalpha():
                tokens[i] = token[:j] + char.upper() + token[j + 1 :]
                return tokens
    return tokens


def tau(scores: Sequence[float]) -> float:
    """Kendall's tau-b of ``scores`` (best rung first) against the rungs' order; 0 when all scores are equal."""
    value = kendalltau(list(range(len(scores), 0, -1)), list(scores)).statistic
    return 0.0 if math.isnan(value) else float(value)


def climb(
    stories: Sequence[str],
    metrics: Mapping[str, Metric],
    seed: int = 0,
    model_rungs: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """Every metric on every rung of every story: per metric its mean tau and per rung its mean score.

    ``model_rungs`` (name -> generated texts, best model first) are scored too and placed between the story
    and the babble: ``model_order_tau`` is the tau of the rung means in the order story, models, babble.
    """
    ladders = [rungs(text, f"{seed}/{index}") for index, text in enumerate(stories)]
    report = {}
    for name, metric in metrics.items():
        scores = [[metric(ladder[rung]) for rung in RUNGS] for ladder in ladders]
        taus = [tau(row) for row in scores]
        entry = {
            "tau": round(fmean(taus), 4),
            "meets_goal": fmean(taus) >= GOAL,
            "rung_means": {rung: round(fmean(row[i] for row in scores), 4) for i, rung in enumerate(RUNGS)},
            "story_taus": [round(t, 4) for t in taus],
        }
        if model_rungs:
            models = {model: round(fmean(metric(t) for t in texts), 4) for model, texts in model_rungs.items()}
            order = [entry["rung_means"]["story"], *models.values(), entry["rung_means"]["babble"]]
            entry |= {"model_means": models, "model_order_tau": round(tau(order), 4)}
        report[name] = entry
    return report

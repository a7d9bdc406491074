"""What the evaluate stage measures of one published model, each part a function of the model (or its
writer), the test split and the seed: the same inputs give the same figures, rounded as the metrics hold them.

Perplexity and bits per byte per collection; the test stories' openings continued; sample stories
for the evaluation prompts; the narrative metrics' means, diversity and the content screen's pass
rates over them; the control accuracy. The stage (stages/evaluate.py) times the parts and writes them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from statistics import fmean

from tqdm import tqdm

from aitale.data.structure import prompt, request_and_story
from aitale.evaluation.corruptions import validate
from aitale.evaluation.narrative.creativity import distinct_n
from aitale.evaluation.narrative.diversity import self_bleu
from aitale.evaluation.overlap import split_story
from aitale.evaluation.perplexity import Score, score_stories, score_texts, torch_logits
from aitale.generation.writer import Writer
from aitale.labels import AGE_GROUPS
from aitale.modeling.model import model_context
from aitale.params import EvaluateParams
from aitale.safety import Screen

log = logging.getLogger(__name__)


def perplexity_by_collection(model, tokenizer, records: list[dict], stride: int) -> dict[str, Score]:
    if model.config.is_encoder_decoder:  # T5: the story given its request
        collections: dict[str, list[dict]] = defaultdict(list)
        for record in records:
            collections[record["collection"]].append(record)
        return {name: score_stories(model, tokenizer, group) for name, group in collections.items()}
    groups: dict[str, list[str]] = defaultdict(list)
    for record in records:
        groups[record["collection"]].append(record["structured"])
    logits = torch_logits(model)
    encode = lambda text: tokenizer(text).input_ids  # noqa: E731
    return {
        name: score_texts(
            tqdm(texts, desc=f"perplexity {name}", leave=False), encode, logits, model_context(model), stride
        )
        for name, texts in groups.items()
    }


def perplexity_metrics(by_collection: dict[str, Score], holdout: dict[str, Score], held_out: int) -> dict:
    """The perplexity entries of the metrics: overall, per collection, and on the ``held_out`` hold-out stories."""
    overall = sum(by_collection.values(), Score())
    return {
        "perplexity": round(overall.perplexity, 3),
        "bits_per_byte": round(overall.bits_per_byte, 4),
        "tokens": overall.tokens,
        "by_collection": rounded(by_collection),
        # out of collection: the hold-out's stories (held-out books, held-out custom tales) are in no split
        "holdout": {**rounded_score(sum(holdout.values(), Score())), "stories": held_out} if held_out else None,
        "holdout_by_collection": rounded(holdout),
    }


def rounded_score(score: Score) -> dict:
    return {
        "perplexity": round(score.perplexity, 3),
        "bits_per_byte": round(score.bits_per_byte, 4),
        "tokens": score.tokens,
    }


def rounded(by_collection: dict[str, Score]) -> dict[str, dict]:
    return {
        name: {"perplexity": round(s.perplexity, 3), "bits_per_byte": round(s.bits_per_byte, 4)}
        for name, s in sorted(by_collection.items())
    }


def continue_stories(writer: Writer, records, prompt_fraction, seed: int) -> list[dict]:
    """Each story's opening continued by the model (seeded per story), with the real continuation."""
    if writer.decoder.layout.positional is not None:  # T5 writes a whole story from the request alone
        log.info("writing %d test stories from their requests", len(records))
        written = writer.write(
            [request_and_story(r)[0] for r in records],
            [writer.defaults.but(seed=seed + i) for i in range(len(records))],
            progress="stories",
        )
        return [
            {"collection": r["collection"], "story": w.text, "reference": r["text"]} for r, w in zip(records, written)
        ]
    pairs = [split_story(record["text"], prompt_fraction) for record in records]
    log.info("continuing %d test stories", len(records))
    written = writer.write(
        [prompt(r["title"]) + pair.prompt for r, pair in zip(records, pairs)],
        [writer.defaults.but(seed=seed + i) for i in range(len(records))],
        keep_last=writer.context // 2,
        progress="continuations",
    )  # room to go on
    return [
        {"collection": r["collection"], "story": w.text, "reference": pair.reference}
        for r, pair, w in zip(records, pairs, written)
    ]


def sample_stories(writer: Writer, params: EvaluateParams, seed: int, story_metrics: dict) -> list[dict]:
    """``samples_per_prompt`` stories for each of the evaluation's titles, each with its story metrics."""
    titles = [t for t in params.sample_prompts for _ in range(params.samples_per_prompt)]
    written = writer.write(
        [prompt(t) for t in titles],
        [writer.defaults.but(seed=seed + 10_000 + i) for i in range(len(titles))],
        progress="samples",
    )
    return [
        {"title": title, "story": w.text, "metrics": {name: fn(w.text) for name, fn in story_metrics.items()}}
        for title, w in zip(titles, written)
    ]


def story_measures(
    generated: list[str],
    continued: list[str],
    references: list[str],
    story_metrics: dict,
    screen: Screen,
    unsafe: list[str],
    seed: int,
) -> dict:
    """The narrative metrics' means (samples, continuations, real stories), the samples' diversity and pass
    rates, and how often each metric tells a real story from a corrupted copy (``unsafe``: unsafe passages)."""
    return {
        "narrative": {
            "samples": mean_metrics(generated, story_metrics),
            "continuations": mean_metrics(continued, story_metrics),
            "references": mean_metrics(references, story_metrics),
        },
        "diversity": {
            "self_bleu": round(self_bleu(generated), 3),
            "distinct_2": round(fmean(distinct_n(s, 2) for s in generated), 4),
        },
        "screen_pass_rate": pass_rates(screen, generated),
        "validation": validate(references, screen=screen, unsafe=unsafe, seed=seed),
    }


def pass_rates(screen: Screen, stories: list[str]) -> dict[str, float]:
    """Per age group, the share of ``stories`` the content screen passes."""
    return {age: round(fmean(v.safe for v in screen.judge_many(stories, age)), 4) for age in AGE_GROUPS}


def control_accuracy(writer: Writer, params: EvaluateParams, seed: int, classifiers: str, screen: Screen) -> dict:
    """The control grid written with and without control tokens, judged by the classify stage's judges."""
    from aitale.evaluation import control

    result = control.measure(
        writer,
        params.sample_prompts,
        params.control.themes,
        params.control.stories_per_condition,
        seed + 20_000,
        judges=control.load_judges(classifiers),
        screen=screen,
        resamples=params.control.bootstrap_resamples,
    )
    for d in control.DIMENSIONS:
        gain, low, high = (result[key][d] for key in ("gain_points", "gain_ci_low", "gain_ci_high"))
        log.info("control gain, %s: %+.1f points (95%% interval %+.1f to %+.1f)", d, gain, low, high)
    return result


def mean_metrics(texts: list[str], story_metrics: dict) -> dict[str, float]:
    return {name: round(fmean(fn(t) for t in texts), 4) for name, fn in story_metrics.items()}

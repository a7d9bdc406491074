"""The quality ladder in full: does every story metric rank a tale above its broken copies, on tales it was not
tuned on?

Two sets of tales from the shared corpus (150 to 1,500 words each, drawn with fixed seeds): the *tuning* tales,
from the ten reference books, on which the metrics' parts and weights were chosen; and the *reporting* tales,
from library books that are not among the ten (fairy-tale collections and fables, at most three tales a book),
on which they were not. Each tale is climbed down its four rungs (``aitale.evaluation.ladder``): the tale, its
sentences shuffled, its words shuffled inside each sentence, babble from its word counts. A headline metric
must reach a mean Kendall tau of 0.8 on the reporting tales.

``--model-samples NAME=PATH`` (repeatable, best model first) adds generated texts (JSON lines as
``stages.judge`` reads them) as rungs between the real tales and the babble, ranked by their mean scores.

    .venv/bin/python -m benchmarks.quality_ladder
    .venv/bin/python -m benchmarks.quality_ladder --model-samples library=lib.jsonl --model-samples default=d.jsonl

Results: benchmarks/results/quality_ladder.json
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from aitale.data.gutenberg import parse_book
from aitale.data.text import WORD, sentences, word_count
from aitale.evaluation import grammar
from aitale.evaluation.judge import TextsError, read_texts
from aitale.evaluation.ladder import GOAL, RUNGS, climb
from aitale.evaluation.metrics import BESIDE, HEADLINE, screenless_metrics, story_metrics
from aitale.io import write_json
from aitale.machine import LoadRange, describe
from aitale.safety import load_screen
from aitale.safety.screen import BUNDLE

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
TUNING_BOOKS = (28, 503, 640, 2591, 5314, 7128, 11339, 17208, 22373, 29021)  # the ten reference books
# Tale collections and fables of the library that are not among the ten (novels and chapter books left out).
REPORTING_BOOKS = (7277, 641, 5615, 1597, 32202, 37532, 9368, 8653, 15946, 29337, 3282, 2435, 540, 6746, 3454)
REPORTING_BOOKS += (36532, 7871, 2781)
MIN_WORDS, MAX_WORDS = 150, 1500
SEED = 0


def tales(folder: Path, books: tuple[int, ...], count: int, seed: int, per_book: int) -> list[dict]:
    """``count`` tales of tale length, at most ``per_book`` from each book, drawn with ``seed``."""
    pool = []
    for book in books:
        found = [
            t
            for t in parse_book((folder / f"pg{book}.txt").read_bytes(), book)
            if MIN_WORDS <= word_count(t.text) <= MAX_WORDS
        ]
        random.Random(f"{seed}/{book}").shuffle(found)
        pool += [
            {"book": book, "title": t.title, "words": word_count(t.text), "text": t.text} for t in found[:per_book]
        ]
    random.Random(seed).shuffle(pool)
    return pool[:count]


def model_rungs(specs: list[str]) -> dict[str, list[str]]:
    """``NAME=PATH`` -> the texts of PATH, in the order given (best model first)."""
    found = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model-samples {spec!r}: expected NAME=PATH")
        try:
            found[name] = [t.text for t in read_texts(path)]
        except TextsError as err:
            raise SystemExit(f"--model-samples {name}: {err}") from None
    return found


def grammar_speed(texts: list[str], count: int = 300) -> dict:
    """Link Grammar's verdicts on the first ``count`` sentences of ``texts``: the binding (in this process, no
    cache) against ``link-parser`` (one batch-mode process for all), ms per sentence and agreement."""
    chosen = [s for text in texts for s in sentences(text) if len(WORD.findall(s)) >= grammar.MIN_WORDS][:count]
    started = time.perf_counter()
    grammar._parser()  # the dictionary, loaded once per process
    loaded = time.perf_counter()
    binding = [grammar.parses.__wrapped__(s) for s in chosen]
    parsed = time.perf_counter()
    program = grammar.link_parser_verdicts(chosen)
    done = time.perf_counter()
    return {
        "sentences": len(chosen),
        "words_per_sentence": round(sum(len(WORD.findall(s)) for s in chosen) / len(chosen), 1),
        "binding_ms_per_sentence": round(1000 * (parsed - loaded) / len(chosen), 2),
        "binding_dictionary_seconds": round(loaded - started, 2),
        "link_parser_ms_per_sentence": round(1000 * (done - parsed) / len(chosen), 2),
        "same_verdicts": sum(a == b for a, b in zip(binding, program)),
        "parsed": sum(binding),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(CORPUS), help="folder holding gutenberg/ and library/")
    parser.add_argument("--stories", type=int, default=40, help="tales in each set (default: %(default)s)")
    parser.add_argument("--screen", default=str(REPO / "models/safety"), help="content screen, for age (optional)")
    parser.add_argument("--model-samples", action="append", default=[], metavar="NAME=PATH", help="a model rung")
    parser.add_argument("--output", default=str(REPO / "benchmarks/results/quality_ladder.json"))
    args = parser.parse_args()
    models = model_rungs(args.model_samples)
    corpus = Path(args.corpus)
    sets = {
        "tuning": tales(corpus / "gutenberg", TUNING_BOOKS, args.stories, 1, per_book=6),
        "reporting": tales(corpus / "library", REPORTING_BOOKS, args.stories, 2, per_book=3),
    }
    # age-appropriateness needs the content screen; without one (no `dvc repro` yet) the others still run
    metrics = story_metrics(load_screen(args.screen)) if (Path(args.screen) / BUNDLE).exists() else screenless_metrics()
    load, started, result = LoadRange(), time.perf_counter(), {}
    for name, chosen in sets.items():
        texts = [t["text"] for t in chosen]
        report = climb(texts, metrics, SEED, models if name == "reporting" else None)
        result[name] = {
            "books": sorted({t["book"] for t in chosen}),
            "stories": [{k: t[k] for k in ("book", "title", "words")} for t in chosen],
            "metrics": report,
        }
        load.sample()
        print(f"{name}: " + ", ".join(f"{m} {r['tau']:.3f}" for m, r in report.items()))
    speed = grammar_speed([t["text"] for t in sets["reporting"]])
    print(f"grammar: {speed}")
    headline = {m: result["reporting"]["metrics"][m]["tau"] for m in HEADLINE}
    write_json(
        args.output,
        {
            "goal": GOAL,
            "rungs": list(RUNGS),
            "headline": list(HEADLINE),
            "beside": [m for m in BESIDE if m in metrics],
            "headline_meets_goal": all(tau >= GOAL for tau in headline.values()),
            "model_rungs": list(models),
            "seed": SEED,
            **result,
            "grammar_speed": speed,
            "seconds": round(time.perf_counter() - started, 1),
            "load_average": load.summary(),
            "machine": describe(),
        },
    )


if __name__ == "__main__":
    main()

"""What each candidate of the content screen's judge contributes: the screen refitted with one more feature at a
time, measured on the untouched test part of the first labelled set and on the whole new test part, at two
operating points: the thresholds cross-validation on the train part chooses (``cv``), and those raised until
``safety.stories_pass`` of the project's own stories pass for their age group (``stories``, as the stage does).

    .venv/bin/python -m benchmarks.safety_judge              # every variant (about 5 minutes each on 2 cores)
    .venv/bin/python -m benchmarks.safety_judge --only +pairs+concepts

Results: benchmarks/results/safety_judge.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from aitale.data.stories import load_stories
from aitale.io import write_json
from aitale.labels import AGE_GROUPS
from aitale.machine import describe
from aitale.params import SafetyParams, load_section
from aitale.safety import confusables, profanity
from aitale.safety.build import PARTS, fit_screen, passing_threshold
from aitale.safety.classifier import UNSAFE
from aitale.safety.concepts import expand
from aitale.safety.labelled import load_passages
from aitale.safety.measure import judges, report
from aitale.safety.wordnet import open_wordnet

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {  # name: features (beside lemmas and the rules)
    "lemmas": [],
    "+pairs": ["pairs"],
    "+pairs+concepts": ["pairs", "concepts"],
    "+pairs+concepts+relations": ["pairs", "concepts", "relations"],
    "+pairs+concepts+relations+chars": ["pairs", "concepts", "relations", "chars"],
    "+pairs+concepts+relations+chars+exceptions": ["pairs", "concepts", "relations", "chars", "exceptions"],
    "+pairs+concepts+relations+exceptions+idioms": ["pairs", "concepts", "relations", "exceptions", "idioms"],
    "+pairs+concepts+relations+chars+exceptions+profanity": [
        "pairs",
        "concepts",
        "relations",
        "chars",
        "exceptions",
        "profanity",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--output", default=str(REPO / "benchmarks/results/safety_judge.json"))
    args = parser.parse_args()
    params = load_section(SafetyParams, "safety", REPO / "params.yaml")
    passages = load_passages(REPO / "data/safety/passages.jsonl")
    lexicon = yaml.safe_load((REPO / "data/safety/rules.yaml").read_text())
    with open_wordnet() as wordnet:
        concepts = expand(wordnet, yaml.safe_load((REPO / "data/safety/concepts.yaml").read_text()))
    alikes, shipped = confusables.table(), profanity.extract()
    stories = load_stories(REPO / "data/stories")
    train = [p for p in passages if p.split == "train"]
    parts = {name: [p for p in passages if p.split == "test" and belongs(p)] for name, belongs in PARTS.items()}
    results = {}
    for name, features in VARIANTS.items():
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        started = time.perf_counter()
        screen = fit_screen(train, lexicon, concepts, alikes, shipped, params.model_copy(update={"features": features}))
        results[name] = {"features": features, "fit_seconds": round(time.perf_counter() - started, 1)}
        for point in ("cv", "stories"):
            if point == "stories":
                for age in AGE_GROUPS:
                    own = [s.text for s in stories if s.age_group == age]
                    limit = passing_threshold(screen, own, age, params.stories_pass)
                    screen.thresholds[age][UNSAFE] = max(screen.thresholds[age][UNSAFE], limit)
            judge = judges(screen, screen)["screen"]
            results[name][point] = {
                "unsafe_thresholds": {age: screen.thresholds[age][UNSAFE] for age in AGE_GROUPS},
                **{
                    part: {age: report(parts[part], judge, age)["overall"] for age in AGE_GROUPS}
                    for part in ("untouched_test", "new_test")
                },
            }
        print(name, {p: results[name][p]["untouched_test"] for p in ("cv", "stories")}, flush=True)
        write_json(args.output, {"machine": describe(), "params": params.model_dump(), "variants": results})


if __name__ == "__main__":
    main()

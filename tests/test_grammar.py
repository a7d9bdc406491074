"""The grammar metric, pinned to Link Grammar's own program: ``link-parser``'s batch-mode verdicts."""

import os
import subprocess
import sys

import pytest

from aitale.evaluation import grammar
from aitale.evaluation.ladder import rungs
from tests.support.repo import REPO

SENTENCES = [
    "The cat sat on the mat.",
    "Cat the mat on sat the.",
    "Once upon a time there lived a king whose palace was surrounded by a spacious garden.",
    '"You are quite right," cried the King.',
    "Come with us and be gardener to the King, they said to him.",
    "He ran home because he were afraid.",
    "The little hen and her friends was happy.",
    "She gave the bird a crumb of bread, and it sang for her all the morning.",
    "Into the dark forest went.",
    # more linkages than link-parser's 1,000 drawn ones: the verdict depends on drawing as it does
    "Now this princess was wonderfully pretty and was just sixteen years old, and the King was beginning to "
    "think it was time that she should be married.",
    "Why bother about winter?",
    "Them you crust strawberry the.",
    '* "Ah! dear Augustine!',  # a star first: to link-parser's batch mode, a sentence meant to fail
    "!verbosity=3 is not a command here.",
]


def test_each_verdict_is_link_parsers():
    expected = grammar.link_parser_verdicts(SENTENCES)  # link-parser's "+++++ error" lines, batch mode
    assert [grammar.parses(s) for s in SENTENCES] == expected
    assert True in expected and False in expected  # the sentences test both verdicts
    assert expected[0] and not expected[1]


def test_the_figure_is_the_share_of_words_in_sentences_that_parse():
    good, bad = "The cat sat on the mat.", "Cat the mat on sat the."
    assert grammar.parses(good) and not grammar.parses(bad)
    assert grammar.grammaticality(f"{good} {bad}") == 0.5
    assert grammar.grammaticality(f"{good}\n\n{bad} Yes. {good}") == pytest.approx(12 / 18)  # "Yes." is left out
    assert grammar.grammaticality(good) == 1.0 and grammar.grammaticality(bad) == 0.0
    assert grammar.grammaticality("") == 0.0


def test_a_story_parses_better_than_its_words_in_any_order(corpus_dir):
    from aitale.data.gutenberg import parse_book

    tale = parse_book((corpus_dir / "pg2591.txt").read_bytes(), 2591)[0].text
    ladder = rungs(tale, 0)
    scores = {rung: grammar.grammaticality(text) for rung, text in ladder.items()}
    assert scores["story"] > 0.3 > scores["words_shuffled"] and scores["story"] > scores["babble"]


def test_the_verdicts_are_the_same_in_a_fresh_process():
    code = "from aitale.evaluation import grammar; import sys; print([grammar.parses(s) for s in sys.argv[1:]])"
    runs = [
        subprocess.run([sys.executable, "-c", code, *SENTENCES], cwd=REPO, capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout == f"{[grammar.parses(s) for s in SENTENCES]}\n"


def test_without_the_binding_the_error_says_what_to_install(tmp_path):
    code = (
        "from pathlib import Path; import sys; from aitale.evaluation import grammar\n"
        f"grammar.DEBIAN_PACKAGES = Path({str(tmp_path)!r})\n"
        "try:\n    grammar.parses('A cat.')\nexcept grammar.GrammarUnavailable as err:\n    print(err)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert "make system-deps" in result.stdout and "python3-link-grammar" in result.stdout, result

"""Grammar: the share of a story's sentences that Link Grammar parses whole, in [0, 1].

Link Grammar (Debian's ``link-grammar``, ``liblink-grammar5`` and ``python3-link-grammar``; ``make system-deps``
installs them) links each word of a sentence to others by the rules of its English dictionary. A sentence
*parses* when some linkage leaves no word unlinked (no null link) and breaks no post-processing rule, among a
seeded random subset of 1,000 linkages: the verdict of ``link-parser``'s batch mode (its "+++++ error" lines),
which ``tests/test_grammar.py`` holds the two to. Spell guessing is off, so an unknown word is judged by its
form alone, the same on every machine. No time limit: a verdict never depends on the machine's speed.

The figure weighs each sentence by its words, so a long sentence that parses counts for more than a short
exclamation. Sentences of one word are left out (Link Grammar accepts almost any word alone).
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import subprocess
import sys
from functools import cache, lru_cache
from pathlib import Path

from aitale.data.text import WORD, sentences

# Debian's binding, built for the system's CPython 3.11; our interpreter is another build of 3.11, which
# loads the same extension. Only this package is taken from there, not the rest of Debian's dist-packages.
DEBIAN_PACKAGES = Path("/usr/lib/python3/dist-packages")
LINKAGES = 1000  # link-parser's default: the linkages drawn (seeded) when a sentence has more
MIN_WORDS = 2
log = logging.getLogger(__name__)


class GrammarUnavailable(RuntimeError):
    """Link Grammar's Python binding cannot be loaded here; the message says what to install."""


def _binding():
    try:
        import linkgrammar
    except ImportError:
        folder = DEBIAN_PACKAGES / "linkgrammar"
        spec = importlib.util.spec_from_file_location(
            "linkgrammar", folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        if spec is None or not (folder / "__init__.py").is_file():
            raise GrammarUnavailable(
                f"Link Grammar's Python binding is not installed (no {folder}): run `make system-deps` "
                "(Debian: apt-get install link-grammar liblink-grammar5 python3-link-grammar)"
            ) from None
        linkgrammar = importlib.util.module_from_spec(spec)
        sys.modules["linkgrammar"] = linkgrammar
        try:
            spec.loader.exec_module(linkgrammar)
        except ImportError as err:
            del sys.modules["linkgrammar"]
            version = sys.version.split()[0]
            raise GrammarUnavailable(f"{folder} does not load in this Python ({version}): {err}") from None
    return linkgrammar


@cache
def _parser():
    """The English dictionary and the parse options; Link Grammar's messages go to this module's log."""
    lg = _binding()
    # Its default handler prints to stdout (a missing locale, say), which would mix with a command's output.
    lg.LG_Error.set_handler(lambda error, _: log.debug("link-grammar: %s", error.formatmsg().strip()))
    atexit.register(_parser.cache_clear)  # free the dictionary while the binding is still loaded
    options = lg.ParseOptions(
        verbosity=0, min_null_count=0, max_null_count=0, linkage_limit=LINKAGES, spell_guess=0, max_parse_time=-1
    )
    return lg, lg.Dictionary("en"), options


@lru_cache(maxsize=200_000)
def parses(sentence: str) -> bool:
    """Whether Link Grammar links every word of ``sentence`` (one sentence) with no rule broken."""
    lg, dictionary, options = _parser()
    return len(lg.Sentence(" ".join(sentence.split()), dictionary, options).parse()) > 0


def grammaticality(text: str) -> float:
    """Share of the words of ``text``'s sentences (of two words or more) that stand in a sentence that parses."""
    parsed = total = 0
    for sentence in sentences(text):
        count = len(WORD.findall(sentence))
        if count >= MIN_WORDS:
            total += count
            parsed += count if parses(sentence) else 0
    return parsed / total if total else 0.0


def with_grammar(measure: float, text: str) -> float:
    """Half ``measure`` (in [0, 1]) and half ``grammaticality(text)``: how the narrative metrics count grammar.

    A text whose sentences do not parse has no coherence, arc or characters to speak of, whatever its words;
    without this half, a story's words shuffled inside each sentence score as well as the story.
    """
    return (measure + grammaticality(text)) / 2


def link_parser_verdicts(sentences: list[str]) -> list[bool]:
    """The same verdicts from Link Grammar's own program: ``link-parser`` in batch mode, one process for all of
    ``sentences`` (one sentence each, on one line), spell guessing off and the same linkage limit.

    In batch mode it prints "+++++ error N" after each sentence it cannot parse whole; echoing each
    sentence first tells which. Each line starts with a space: at the start of a line "!" is a command,
    "%" a comment and "*" marks a sentence expected to fail. For checks and speed comparisons: the metric
    uses the binding.
    """
    lines = [" " + " ".join(s.split()) for s in sentences]
    command = ["link-parser", "en", "-graphics=0", "-spell=0", "-verbosity=0", f"-limit={LINKAGES}"]
    script = "!batch\n!echo\n" + "".join(f"{line}\n" for line in lines)
    try:
        result = subprocess.run(command, input=script, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise GrammarUnavailable(f"link-parser failed ({err}): run `make system-deps`") from None
    out = result.stdout.splitlines()
    verdicts, k = [], 0
    for i, line in enumerate(out):
        if k < len(lines) and line == lines[k]:
            verdicts.append(not (i + 1 < len(out) and out[i + 1].startswith("+++++ error")))
            k += 1
    if len(verdicts) != len(lines):
        raise GrammarUnavailable(f"link-parser echoed {len(verdicts)} of {len(lines)} sentences")
    return verdicts

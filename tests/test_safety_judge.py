"""The judge beyond words: WordNet's kinds of harm, the profanity model, look-alike letters, what is shown as shown."""

import numpy as np
import pytest
import yaml

from aitale.errors import SourceError
from aitale.safety import confusables
from aitale.safety.concepts import Concepts, expand
from aitale.safety.labelled import load_passages
from aitale.safety.lemmas import tokens
from aitale.safety.profanity import Profanity, extract
from aitale.safety.wordnet import open_wordnet
from tests.support.repo import REPO

SPEC = yaml.safe_load((REPO / "data/safety/concepts.yaml").read_text())


@pytest.fixture(scope="module")
def concepts():
    with open_wordnet() as wordnet:
        return expand(wordnet, SPEC)


def test_wordnet_finds_kinds_of_harm_no_labelled_passage_names(concepts):
    assert "smother" in concepts["suffocate"] and "smother" in concepts["kill"]
    assert "cleaver" in concepts["weapon"] and "poison" in concepts["poison"]
    assert "boy" not in concepts["slur"] and "cleaver" not in concepts["kill"]  # rare senses stay out
    read = Concepts(concepts)
    text = "She held the pillow over her brother's face and smothered him."
    features = read.features(text, tokens(text))
    assert "c:suffocate" in features and "r:smother>person" in features and "r:kill>person" in features
    # a verb's object is looked for in its own clause only
    assert not [f for f in read.features("He waved. The boy ran.", tokens("He waved. The boy ran.")) if "r:" in f]


def test_a_missing_wordnet_says_how_to_install_it(tmp_path):
    with pytest.raises(SourceError, match=r"apt-get install wordnet-base"):
        with open_wordnet(database=tmp_path):
            pass
    with pytest.raises(SourceError, match="synsets WordNet 3.0 does not have: fear: fear.n.99"):
        with open_wordnet() as wordnet:
            expand(wordnet, {"concepts": {"fear": ["fear.n.01", "fear.n.99"]}})


def test_the_profanity_signal_scores_as_the_shipped_model_does():
    from profanity_check import predict_prob

    texts = [p.text for p in load_passages(REPO / "data/safety/passages.jsonl")[::10]]
    texts += ["", "You stupid bastard!", "Ünïcode wörds only", "what a lovely day"]
    ours = Profanity(extract()).scores(texts)
    np.testing.assert_allclose(ours, predict_prob(texts), atol=1e-9)
    assert ours[-3] > 0.9 > 0.1 > ours[-1]


def test_look_alike_letters_read_as_the_latin_ones():
    from confusable_homoglyphs.confusables import is_confusable

    alikes = confusables.table()
    assert alikes["е"] == "e" and alikes["а"] == "a" and alikes["ѕ"] == "s"  # Cyrillic
    for char, latin in list(alikes.items())[::50]:  # the table agrees with the library it came from
        found = is_confusable(char, preferred_aliases=[], greedy=True)
        assert found and latin in {h["c"] for h in found[0]["homoglyphs"]}
    assert confusables.fold("dеad", alikes) == "dead"
    assert confusables.fold("ｓｔａｂ", alikes) == "stab"  # full-width: NFKC
    assert confusables.fold("kn\u200bife", alikes) == "knife"  # a zero-width space
    assert confusables.fold("A plain café.", alikes) == "A plain cafe."


def test_a_disguised_word_is_judged_as_the_word(content_screen):
    plain = "The giant picked up the shepherd and stabbed him until he was dead."
    for disguised in ("The giant picked up the shepherd and stаbbed him until he was dеad.",
                      "The giant picked up the shepherd and s\u200btabbed him until he was d\u00adead."):  # fmt: skip
        verdict = content_screen.judge(disguised, "3-5")
        assert not verdict.safe and verdict.categories == content_screen.judge(plain, "3-5").categories


def test_idioms_of_harm_pass_for_the_youngest(content_screen):
    for text in (
        "It was a stab in the dark, but Mia guessed the right answer.",
        "Grandma came to the party dressed to kill in her purple hat.",
        "We killed time by counting the clouds until Grandma came.",
    ):
        verdict = content_screen.judge(text, "3-5")
        assert verdict.safe, (text, verdict.reasons)


def test_harm_told_by_what_people_do_fails_for_the_youngest(content_screen):
    for text in (
        "He pressed the cushion over the old man's face and held it there until the kicking stopped.",
        "The coach whispered that she must come to his house at midnight and tell no one, not even her mother.",
        "She lifted the cleaver and brought it down again and again on the sleeping boy.",
    ):
        assert not content_screen.judge(text, "3-5").safe, text


def test_what_is_shown_is_judged_as_shown(content_screen):
    story = "Once upon a time a little rabbit hopped to the meadow and ate clover with his sister."
    assert content_screen.judge(story, "3-5").safe
    shown = content_screen.judge_shown(["The Murderer Who Stabbed Everyone", story], "3-5")
    assert not shown.safe and "violence" in shown.categories
    assert any("Murderer" in r["passage"] for r in shown.reasons)

"""Augmentation of the train split: each method changes stories with text that still reads well."""

import random

import pytest

from aitale.data.augment import (
    CLOSINGS,
    OPENINGS,
    augment,
    changed_share,
    modernise,
    new_beginning,
    new_ending,
    paraphrase,
)
from aitale.data.records import Story
from aitale.data.stories import load_stories
from tests.support.repo import REPO


@pytest.fixture(scope="module")
def stories() -> list[Story]:
    return load_stories(REPO / "data/stories")


def every_paraphrase(text: str) -> set[str]:
    """What paraphrase writes for ``text`` over several seeds, swapping every word it can."""
    return {paraphrase(text, random.Random(seed), rate=1.0) for seed in range(8)}


@pytest.mark.parametrize(
    "text",
    [
        "He went home to his little house.",  # the old table wrote "went house"
        "She was three years old.",
        "The table was made of wood.",
        "Wait a little while, and she will be a little tired.",
        "They walked the dog to the gate.",  # "strolled the dog"
        "She leaned on her walking stick.",  # "her strolling stick"
        "He hurried up the hill.",  # a phrasal verb
        "Pip was very nearly asleep.",  # "very almost asleep"
        "He took a big breath.",  # "a large breath"
        "The beginning was slow.",  # a noun, not the verb begin
        "He rocked the cradle.",  # rock the verb: no synonym for it
        "Walker Brown and the Tiny Shiny Lantern said so.",  # names and title words
    ],
)
def test_paraphrase_leaves_the_known_bad_swaps_alone(text):
    assert every_paraphrase(text) == {text}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ada walked home.", {"Ada strolled home."}),  # re-inflected from the base form
        ("She began to sing.", {"She started to sing."}),
        ("A huge owl sat on the rocks.", {"An enormous owl sat on the stones."}),  # article and plural
        ("She felt sad.", {"She felt unhappy."}),
        ("Suddenly the stars shone.", {"All at once the stars glowed.", "All at once the stars gleamed."}),
    ],
)
def test_paraphrase_swaps_by_part_of_speech_and_inflects(text, expected):
    assert every_paraphrase(text) == expected


def test_paraphrase_changes_nearly_every_custom_story(stories):
    assert changed_share(stories, "paraphrase", seed=42) > 0.9


def test_beginning_changes_every_custom_story_in_its_register(stories):
    """None of the custom stories opens with a formula; each gets one of its own style's openings."""
    assert changed_share(stories, "beginning", seed=42) == 1.0
    for story in stories[:20]:
        text = new_beginning(story.text, random.Random(story.id), story.style)
        register = OPENINGS[story.style]
        assert any(text.startswith(o) for o in (*register["lines"], *register["fused"])), (story.style, text[:80])
        assert text.endswith(story.text[1:])


def test_beginning_fuses_a_formula_into_a_scene_and_swaps_an_existing_one():
    texts = {
        new_beginning("In the kingdom of Calloway, the castle sat on a cliff.", random.Random(s)) for s in range(9)
    }
    assert any(t.startswith("Once upon a time, in the kingdom of Calloway") for t in texts)
    swapped = {new_beginning("Once upon a time, there was a hen.", random.Random(s)) for s in range(6)}
    assert all(t.endswith(", there was a hen.") and not t.startswith("Once upon a time") for t in swapped)
    assert all(t.lower().count("once upon a time") <= 1 for t in swapped)


def test_ending_adds_a_closing_of_the_story_style_once(stories):
    assert changed_share(stories, "ending", seed=42) > 0.9
    for story in stories[:12]:
        text = new_ending(story.text, random.Random(story.id), story.style)
        assert text.split("\n\n")[-1] in CLOSINGS[story.style]
    assert new_ending("And they went to bed. The end.", random.Random(0), "bedtime") == "And they went to bed. The end."


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Thou art a fine lad, and thou knowest it.", "You are a fine lad, and you know it."),
        ("Art thou there?", "Are you there?"),
        ("Whither goest thou?", "Where do you go?"),
        ("The art of weaving is old, and art is long.", "The art of weaving is old, and art is long."),
        ("He cometh soon, and she goeth home.", "He comes soon, and she goes home."),
        ("I give thee thine own crown; the ring is thine.", "I give you your own crown; the ring is yours."),
        ("'Tis late, and ere long thou wilt sleep.", "It is late, and before long you will sleep."),
        ("Hast thou seen her? Thou hast a kind heart.", "Have you seen her? You have a kind heart."),
        (
            "She showed her teeth to Elizabeth beneath yonder tree.",
            "She showed her teeth to Elizabeth beneath that tree.",
        ),
    ],
)
def test_modernise_keeps_the_grammar(old, new):
    assert modernise(old) == new


def test_modernise_leaves_modern_stories_alone(stories):
    assert changed_share(stories, "modernise", seed=42) < 0.1


def test_augment_adds_only_changed_copies_the_screen_passes(stories, content_screen):
    unsafe = Story(
        id="t/unsafe", title="The Cellar", text="He stabbed the man again and again until the blood ran out. " * 3,
        source="custom", collection="t", age_group="3-5", themes=[], style="fairy_tale",
    )  # fmt: skip
    train = [*stories[:8], unsafe]
    result = augment(train, ["beginning", "ending", "paraphrase", "modernise"], 1.0, 42, content_screen)
    ids = {r.id for r in result.records}
    assert not any(i.startswith("t/unsafe") for i in ids)
    assert result.counts["beginning"]["unsafe"] >= 1
    for method, counts in result.counts.items():
        assert counts["tried"] == len(train) == counts["added"] + counts["unchanged"] + counts["unsafe"]
        assert counts["added"] == sum(r.augmentation == method for r in result.records)
    by_id = {s.id: s for s in train}
    assert all(r.augmented and r.text != by_id[r.id.split("~")[0]].text for r in result.records)
    again = augment(train, ["beginning", "ending", "paraphrase", "modernise"], 1.0, 42, content_screen)
    assert [r.text for r in again.records] == [r.text for r in result.records]

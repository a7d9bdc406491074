"""The content screen: false friends pass, what the old filter missed is caught, the policy follows the age group."""

import json

import numpy as np
import pytest
import yaml

from aitale.data.stories import load_stories
from aitale.errors import ParamsError, SourceError
from aitale.params import SafetyParams, load_section
from aitale.safety import legacy, load_screen
from aitale.safety.build import build
from aitale.safety.classifier import Featurizer, fit
from aitale.safety.concepts import Concepts
from aitale.safety.labelled import load_passages
from aitale.safety.rules import Rules
from tests.support.repo import REPO
from tests.support.stages import run_stage

LEXICON = yaml.safe_load((REPO / "data/safety/rules.yaml").read_text())
PASSAGES = load_passages(REPO / "data/safety/passages.jsonl")

FALSE_FRIENDS = [
    "The horses stood warm in the stables, and the stable boy brushed their manes.",
    "Brother Lustig walked on, whistling, with his bundle on his back.",
    "They watched a killer whale leap beside the boat.",
    "We killed time by counting the clouds until Grandma came.",
    "She peeled a blood orange and shared it with her brother.",
    "They established a little club for frogs and snails.",
]

# What prepare.filter's keywords let through: none of their words, but not for a child
MISSED = {
    "violence": "Then the man kicked the little dog until it stopped moving.",
    "self_harm": "She locked the door, took out the razor blade and did it again, where nobody would see.",
    "sexual": "In the hotel room they made love while the city slept.",
    "substances": "Uncle Ted got tipsy on the punch and sang until he fell off his chair.",
    "profanity_slurs": "'Get lost, you filthy gypsy,' the man shouted at the old woman.",
}

BRUTAL = (
    "The wolf caught the shepherd and tore him to pieces, and his blood poured over the stones until "
    "the stream ran red; the wolf chewed on his bones all night."
)


def test_false_friends_pass_for_the_youngest(content_screen):
    for text in FALSE_FRIENDS:
        verdict = content_screen.judge(text, "3-5")
        assert verdict.safe, (text, verdict.reasons)


def test_the_old_filter_missed_these_and_the_screen_catches_them(content_screen):
    for category, text in MISSED.items():
        assert legacy.violations(text) == []
        verdict = content_screen.judge(text, "3-5")
        assert not verdict.safe and category in verdict.categories, (text, verdict.reasons)
        assert any(r["category"] == category for r in verdict.reasons)


def test_one_brutal_paragraph_fails_a_long_gentle_story(content_screen):
    # the longest 6-8 story the screen passes (safety.stories_pass of them must: tests/test_stories.py)
    gentle = [s for s in load_stories(REPO / "data/stories") if s.age_group == "6-8"]
    story = max((s for s in gentle if content_screen.judge(s.text, "6-8").safe), key=lambda s: len(s.text))
    paragraphs = story.text.split("\n\n")
    spliced = "\n\n".join([*paragraphs[: len(paragraphs) // 2], BRUTAL, *paragraphs[len(paragraphs) // 2 :]])
    verdict = content_screen.judge(spliced, "6-8")
    assert not verdict.safe and "violence" in verdict.categories and verdict.passages > 5
    assert all("wolf" in r["passage"] for r in verdict.reasons)  # the reasons point at the inserted passage
    assert legacy.violations(spliced) == []  # the old filter's rate over the whole story let it through


def test_what_passes_for_nine_to_twelve_need_not_pass_for_three_to_five(content_screen):
    for text in ("The hunter shot the wolf, and it fell down dead.", "The knight slew the dragon in battle."):
        young, old = content_screen.judge(text, "3-5"), content_screen.judge(text, "9-12")
        assert not young.safe and old.safe, (text, young.reasons, old.reasons)
        assert any("from ages" in r["detail"] for r in young.reasons)
    always = "He took the bottle of vodka and got drunk, then snorted a line of cocaine."
    assert not any(content_screen.judge(always, age).safe for age in ("3-5", "6-8", "9-12"))


def test_rules_match_every_inflection_as_a_whole_word():
    rules = Rules(LEXICON)
    for text in ("He stabs.", "He stabbed him.", "The stabbing was dreadful."):
        assert [h.term for h in rules.hits(text) if h.category == "violence"] == ["stab"], text
    assert rules.hits("A stable, stables and an establishment.") == []
    assert [h.term for h in rules.hits("Kill time, not the killer whale; he killed it.")] == ["kill"]
    with pytest.raises(ValueError, match="terms.gore: not a category"):
        Rules({"terms": {"gore": {"never": ["blood"]}}})


def test_an_idioms_words_are_not_read_as_harm():
    concepts = Concepts({"kill": ["kill", "smother"]})
    rules = Rules({"terms": {"violence": {"never": ["kill"]}}, "exceptions": ["kill time"]})
    plain = Featurizer(["pairs", "concepts"], concepts, None, rules.excused)  # idioms off: the word is the word
    idioms = Featurizer(["pairs", "concepts", "idioms"], concepts, None, rules.excused)
    text = "We killed time, and then the wolf killed the hen."
    assert plain.words(text).count("kill") == 2 and plain.words(text).count("c:kill") == 2
    read = idioms.words(text)
    assert read[:3] == ["we", "i:kill", "i:time"] and "i:kill i:time" in read
    assert read.count("kill") == 1 and read.count("c:kill") == 1  # the wolf's killing is still a killing


def test_the_classifier_scores_as_scikit_learn_does():
    from scipy.sparse import hstack

    train = [p for p in PASSAGES if p.split == "train"][:300]
    concepts = Concepts({"weapon": ["knife", "cleaver", "axe"], "kill": ["kill", "smother"], "child": ["boy", "girl"]})
    featurizer = Featurizer(["pairs", "concepts", "relations", "chars"], concepts, None)
    vectorizers, models, _, classifier = fit(train, featurizer, regularization=4.0, min_df=1, seed=0)
    texts = [p.text for p in PASSAGES if p.split == "test"][:40] + ["", "zzz unknown words only", "He killed the boy."]
    ours = classifier.scores(texts)
    matrix = hstack([vectorizers["words"].transform(texts), vectorizers["chars"].transform(texts)]).tocsr()
    for (age, head), model in models.items():
        expected = model.predict_proba(matrix)[:, 1]
        np.testing.assert_allclose([s[age][head] for s in ours], expected, atol=1e-9)


def test_the_saved_screen_scores_as_the_one_the_stage_measured(screen_dir, content_screen):
    """The bundle read back (load_screen) gives the scores the stage's metrics came from."""
    metrics = json.loads((screen_dir.parent / "safety.json").read_text())
    test = [p for p in PASSAGES if p.split == "test" and p.untouched]
    for age in ("3-5", "9-12"):
        verdicts = content_screen.judge_many([p.text for p in test], age)
        flagged = sum(not v.safe for v in verdicts)
        assert flagged == metrics["untouched_test"][age]["screen"]["overall"]["flagged"]


def test_the_test_part_never_shapes_the_screen(tmp_path):
    params = load_section(SafetyParams, "safety", REPO / "params.yaml").model_copy(
        update={"features": ["pairs", "concepts"], "folds": 2}
    )
    concepts = {"kill": ["kill", "murder", "smother"], "weapon": ["knife", "axe"]}
    relabelled = [p if p.split == "train" else p.model_copy(update={"categories": [], "youngest": "3-5"})
                  for p in PASSAGES]  # fmt: skip
    screen, metrics, _ = build(PASSAGES, LEXICON, concepts, {}, None, params)
    again, other, _ = build(relabelled, LEXICON, concepts, {}, None, params)
    for folder, built in (("one", screen), ("two", again)):
        (tmp_path / folder).mkdir()
        built.save(tmp_path / folder)
    for name in ("screen.json", "arrays.npz"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert metrics["test"] != other["test"]  # only the measurement changed
    combined = metrics["untouched_test"]["3-5"]["screen"]["overall"]
    assert combined["recall"] > metrics["untouched_test"]["3-5"]["keyword_filter"]["overall"]["recall"]


def test_safety_metrics_compare_the_screens_per_test_part_age_and_category(screen_dir):
    metrics = json.loads((screen_dir.parent / "safety.json").read_text())
    assert metrics["passages"]["test"] + metrics["passages"]["train"] == len(PASSAGES) >= 2000
    assert metrics["passages"]["untouched_test"] == sum(p.split == "test" and p.id <= "s0567" for p in PASSAGES)
    for part in ("untouched_test", "new_test", "test"):
        for age in ("3-5", "6-8", "9-12"):
            assert set(metrics[part][age]) == {"keyword_filter", "before", "rules", "classifier", "screen"}
            for report in metrics[part][age].values():
                assert set(report["per_category"]) == set(LEXICON["terms"])
                assert 0 <= report["overall"]["precision"] <= 1 and 0 <= report["overall"]["recall"] <= 1
    curves = screen_dir.parent / "plots"
    point = (curves / "3-5_operating_point.csv").read_text().splitlines()
    assert point[0].startswith("threshold,recall,precision") and len(point) == 3  # one per test part
    untouched = metrics["untouched_test"]["3-5"]["screen"]["overall"]
    assert f",{untouched['recall']},{untouched['precision']},True,untouched_test" in "\n".join(point)


def test_screen_command_adds_the_verdict_and_keeps_the_other_fields(tmp_path, screen_dir):
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a", "text": FALSE_FRIENDS[0], "page": 3}) + "\n" + json.dumps({"id": "b", "text": BRUTAL})
    )
    out = tmp_path / "out.jsonl"
    result = run_stage(
        "screen", "--age-group", "3-5", "--input", str(source), "--output", str(out), "--screen", str(screen_dir)
    )
    assert result.returncode == 0, result.stderr
    gentle, brutal = [json.loads(line) for line in out.read_text().splitlines()]
    assert gentle["page"] == 3 and gentle["safe"] is True and gentle["categories"] == []
    assert brutal["safe"] is False and "violence" in brutal["categories"] and brutal["reasons"]
    assert set(brutal["scores"]) == set(LEXICON["terms"])


@pytest.mark.parametrize(
    ("lines", "age", "message"),
    [
        (['{"text": "fine"}', "not json"], "3-5", "in.jsonl:2: not JSON"),
        (['{"text": "fine"}', '{"id": 1}'], "3-5", "in.jsonl:2: expected a JSON object with a string 'text'"),
        (['["a list"]'], "3-5", "in.jsonl:1: expected a JSON object"),
        (['{"text": "fine"}'], "4-6", "unknown age group '4-6'"),
    ],
)
def test_screen_command_rejects_bad_input_and_writes_nothing(tmp_path, screen_dir, lines, age, message):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = run_stage(
        "screen", "--age-group", age, "--input", str(source), "--output", str(out), "--screen", str(screen_dir)
    )
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()


def test_a_missing_screen_says_how_to_build_it(tmp_path):
    with pytest.raises(SourceError, match="no content screen here"):
        load_screen(tmp_path)


def test_every_age_group_needs_an_operating_point(tmp_path):
    path = tmp_path / "params.yaml"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    del params["safety"]["operating_point"]["6-8"]
    params["safety"]["features"] = ["pairs", "smell"]
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as raised:
        load_section(SafetyParams, "safety", path)
    assert "safety.operating_point: 6-8: every age group needs its operating point" in str(raised.value)
    assert "safety.features" in str(raised.value) and "smell" in str(raised.value)

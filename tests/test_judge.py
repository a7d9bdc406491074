"""``python -m stages.judge``: every story metric for any texts, the same figures evaluate reports."""

import json

import pytest

from aitale.data.stories import load_stories
from aitale.evaluation.ladder import rungs
from aitale.evaluation.metrics import BESIDE, HEADLINE, story_metrics
from tests.support.repo import REPO
from tests.support.stages import run_stage

STORIES = [s.text for s in load_stories(REPO / "data/stories")[:3]]


def judge(tmp_path, lines: list[str], screen_dir) -> tuple[object, object]:
    texts, scores = tmp_path / "texts.jsonl", tmp_path / "scores.jsonl"
    texts.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    result = run_stage("judge", "--input", str(texts), "--output", str(scores), "--screen", str(screen_dir))
    return result, scores


def test_one_line_of_scores_per_text_with_its_id_and_every_metric(tmp_path, screen_dir, content_screen):
    lines = [
        json.dumps({"id": "real", "text": STORIES[0], "title": "A title"}),
        json.dumps({"id": 7, "text": rungs(STORIES[0], 0)["babble"]}),
        json.dumps({"id": "older", "text": STORIES[1], "age_group": "9-12"}),
    ]
    result, scores = judge(tmp_path, lines, screen_dir)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["real", 7, "older"]
    for row in rows:
        assert set(row) == {"id", *HEADLINE, *BESIDE}
    # the same functions evaluate reports with, age-appropriateness for the line's own age group
    expected = {name: round(fn(STORIES[1]), 4) for name, fn in story_metrics(content_screen, "9-12").items()}
    assert {k: v for k, v in rows[2].items() if k != "id"} == expected
    young = story_metrics(content_screen, "3-5")["age_appropriateness"](STORIES[1])
    assert young != pytest.approx(rows[2]["age_appropriateness"], abs=1e-4)
    for name in HEADLINE:  # babble of the story's own words scores below the story on every headline metric
        assert rows[1][name] < rows[0][name], name


def test_a_bad_line_fails_with_its_number_and_nothing_is_written(tmp_path, screen_dir):
    lines = [
        json.dumps({"id": "fine", "text": STORIES[0]}),
        "",  # blank lines are skipped, not counted as texts
        "{not json",
        json.dumps({"id": "x", "text": "Hi.", "age-group": "3-5"}),
        json.dumps({"id": "y", "text": "Hi.", "age_group": "adult"}),
        json.dumps({"text": "no id"}),
        json.dumps({"id": "fine", "text": "a second line with the same id"}),
        json.dumps(["a", "list"]),
    ]
    result, scores = judge(tmp_path, lines, screen_dir)
    assert result.returncode == 2
    assert not scores.exists()
    for expected in (
        "line 3: not JSON",
        "line 4: unknown key 'age-group'",
        "line 5: age_group 'adult' is not one of 3-5, 6-8, 9-12",
        "line 6: missing id",
        "line 7: id 'fine' already on line 1",
        "line 8: expected a JSON object",
    ):
        assert expected in result.stderr, (expected, result.stderr)
    assert "line 1:" not in result.stderr and "line 2:" not in result.stderr


def test_a_failed_judge_keeps_the_previous_scores(tmp_path, screen_dir):
    scores = tmp_path / "scores.jsonl"
    scores.write_text('{"id": "old"}\n')
    result, _ = judge(tmp_path, ['{"id": 1}'], screen_dir)
    assert result.returncode == 2 and "line 1: missing text" in result.stderr
    assert scores.read_text() == '{"id": "old"}\n'


def test_help_names_the_fields():
    result = run_stage("judge", "--help")
    assert result.returncode == 0
    for word in ("--input", "--output", "--screen", "age_group", "title"):
        assert word in result.stdout

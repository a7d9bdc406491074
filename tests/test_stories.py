"""The embedded corpus: original stories with complete, valid metadata."""

from collections import Counter

import pytest
import yaml

from aitale.data.stories import load_stories
from aitale.data.text import word_count
from aitale.errors import SourceError
from tests.support.repo import REPO

STORIES = load_stories(REPO / "data/stories")


def test_at_least_sixty_stories_and_thirty_thousand_words():
    assert len(STORIES) >= 60
    assert sum(word_count(s.text) for s in STORIES) >= 30_000


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.id)
def test_story_length_and_metadata(story):
    assert 250 <= word_count(story.text) <= 800
    assert story.title and story.themes and story.style in {"fairy_tale", "fable", "bedtime"}


def test_every_age_group_and_style_is_well_represented():
    assert min(Counter(s.age_group for s in STORIES).values()) >= 15
    assert min(Counter(s.style for s in STORIES).values()) >= 15


def test_titles_are_unique_and_no_story_repeats_another_opening():
    assert len({s.title.lower() for s in STORIES}) == len(STORIES)
    assert len({s.text[:60] for s in STORIES}) == len(STORIES)


def test_custom_stories_pass_the_content_screen_for_their_age_group(content_screen):
    """No rule fails one, and the screen's thresholds let at least safety.stories_pass of them through."""
    share = yaml.safe_load((REPO / "params.yaml").read_text())["safety"]["stories_pass"]
    verdicts = {s.id: content_screen.judge(s.text, s.age_group) for s in STORIES}
    assert [i for i, v in verdicts.items() if any(r["source"] == "rule" for r in v.reasons)] == []
    failed = [i for i, v in verdicts.items() if not v.safe]
    assert len(failed) <= len(STORIES) * (1 - share), failed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("No front matter here.\n", "front matter"),
        (
            "---\ntitle: X\nage_group: 4-6\nthemes: [kindness]\nstyle: fable\n---\nText.\n",
            "'age_group': Input should be '3-5', '6-8' or '9-12'",
        ),
        ("---\ntitle: X\nage_group: 3-5\nthemes: []\nstyle: fable\nmood: calm\n---\nText.\n", "'mood': Extra inputs"),
        (
            "---\ntitle: X\nage_group: 3-5\nthemes: [bravery]\nstyle: fable\n---\nText.\n",
            "'themes.0': Input should be 'kindness'",
        ),
    ],
)
def test_malformed_story_files_are_rejected_with_the_file_name(tmp_path, content, message):
    (tmp_path / "bad.md").write_text(content)
    with pytest.raises(SourceError, match=message) as err:
        load_stories(tmp_path)
    assert "bad.md" in str(err.value)

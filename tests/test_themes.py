"""Book stories get the themes the custom stories teach, marked as predicted."""

from aitale.data.records import Story
from aitale.data.themes import tag_themes

BRAVE = "The little knight was afraid of the dark cave, but she was brave and walked in with her lantern, bold"
SHARING = "The bear shared his honey with the hungry rabbits and gave his apples away, generous and glad to give"


def story(i: int, text: str, themes: list[str], source: str) -> Story:
    return Story(
        id=f"s{i}", title=f"Story {i}", text=f"{text} {i}.", source="custom", collection="c", age_group="3-5",
        themes=themes, style="fable", themes_source=source,
    )  # fmt: skip


def corpus() -> list[Story]:
    taught = [story(i, BRAVE, ["courage"], "given") for i in range(8)]
    taught += [story(10 + i, SHARING, ["generosity"], "given") for i in range(8)]
    books = [story(100 + i, SHARING if i % 2 else BRAVE, [], "none") for i in range(10)]
    return taught + books


def test_a_book_story_gets_the_theme_its_words_teach_and_is_marked_predicted():
    stories = corpus()
    given = tag_themes(stories, share=0.5, min_stories=6, most=1, seed=0)
    books = stories[16:]
    assert given == {"courage": 5, "generosity": 5}
    for s in books:
        assert s.themes_source == "predicted"
        assert s.themes == (["generosity"] if "honey" in s.text else ["courage"])


def test_given_themes_stay_and_rare_themes_are_never_predicted():
    stories = corpus()
    assert tag_themes(stories, share=0.5, min_stories=9, most=2, seed=0) == {}
    assert all(s.themes == [] and s.themes_source == "none" for s in stories[16:])
    assert all(s.themes_source == "given" for s in stories[:16])


def test_tagging_is_the_same_on_every_run():
    first, second = corpus(), corpus()
    tag_themes(first, 0.3, 6, 2, seed=3)
    tag_themes(second, 0.3, 6, 2, seed=3)
    assert [s.themes for s in first] == [s.themes for s in second]

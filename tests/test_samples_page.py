"""The sample-stories page: text escaped in the HTML, verbatim in the Markdown, metrics to 3 decimals."""

from html.parser import HTMLParser
from pathlib import Path

from aitale.evaluation.samples_page import write_samples

STORY = 'Tom said "hi" & ran off.\n\n<script>alert(1)</script> was all\nthe owl wrote.\n\n\n\nThe end.'
SAMPLES = [
    {"title": "Fish & <Chips>", "story": STORY, "metrics": {"repetition": 0.12345, "length": 2, "arc": 0.9996}},
    {"title": "The Owl", "story": "One line.", "metrics": {"arc": 1 / 3}},
]


class Page(HTMLParser):
    """The start tags in order, and the text of each <p>, <h1> and <h2>."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.texts: dict[str, list[str]] = {"p": [], "h1": [], "h2": []}
        self.current: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag in self.texts:
            self.current = tag
            self.texts[tag].append("")

    def handle_endtag(self, tag):
        if tag == self.current:
            self.current = None

    def handle_data(self, data):
        if self.current:
            self.texts[self.current][-1] += data


def write(folder: Path) -> tuple[str, str]:
    write_samples(folder, "models/<tiny> & co", SAMPLES)
    return (folder / "samples.html").read_text(encoding="utf-8"), (folder / "samples.md").read_text(encoding="utf-8")


def test_html_escapes_every_text_and_keeps_the_paragraphs(tmp_path):
    page, _ = write(tmp_path)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp; ran off." in page and "Fish &amp; &lt;Chips&gt;" in page
    parsed = Page()
    parsed.feed(page)
    parsed.close()
    assert "script" not in parsed.tags and parsed.tags.count("article") == 2
    assert parsed.texts["h1"] == ["Sample stories from models/<tiny> & co"]
    assert parsed.texts["h2"] == ["1. Fish & <Chips>", "2. The Owl"]
    assert parsed.texts["p"] == [
        'Tom said "hi" & ran off.',
        "<script>alert(1)</script> was all\nthe owl wrote.",
        "The end.",
        "One line.",
    ]  # read back exactly; no empty paragraph


def test_markdown_holds_the_text_verbatim(tmp_path):
    _, markdown = write(tmp_path)
    assert markdown.startswith("# Sample stories from `models/<tiny> & co`\n")
    assert f"## 1. Fish & <Chips>\n\n{STORY}\n\n| metric | value |\n" in markdown
    assert "## 2. The Owl\n\nOne line.\n" in markdown
    assert "&amp;" not in markdown and "&lt;" not in markdown


def test_metrics_are_sorted_and_shown_with_three_decimals(tmp_path):
    page, markdown = write(tmp_path)
    assert "| arc | 1.000 |\n| length | 2.000 |\n| repetition | 0.123 |\n" in markdown
    assert "| arc | 0.333 |\n" in markdown
    rows = "<tr><th>arc</th><td>1.000</td></tr>\n<tr><th>length</th><td>2.000</td></tr>\n"
    assert rows + "<tr><th>repetition</th><td>0.123</td></tr>\n" in page
    assert "<tr><th>arc</th><td>0.333</td></tr>" in page

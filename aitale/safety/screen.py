"""The content screen: is a text fit for an age group, which categories does it touch, and where and why.

A text is judged passage by passage (runs of ``passage_sentences`` whole sentences:
:func:`aitale.data.text.sentence_runs`), so one brutal paragraph fails a long gentle tale.
A passage fails for an age group when a rule listed for older readers hits it, or when the
classifier's score for a category reaches that age group's threshold. The bundle the ``safety``
stage writes (``models/safety/screen.json``) holds the lexicon, the classifier and the thresholds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from aitale.data.text import sentence_runs
from aitale.errors import SourceError
from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.safety.classifier import Classifier
from aitale.safety.rules import Rules

BUNDLE = "screen.json"
FORMAT = 1
_SHOWN = 160  # characters of a flagged passage a reason quotes


@dataclass
class Verdict:
    safe: bool
    age_group: str
    categories: list[str]  # the categories that failed, in SAFETY_CATEGORIES order
    scores: dict[str, float]  # per category, the highest over the passages (a rule hit scores 1)
    reasons: list[dict] = field(default_factory=list)  # category, source (rule|classifier), detail, passage
    passages: int = 0
    mean_score: float = 0.0  # over the passages, each one's highest category score: how much of the text is unsafe

    def to_json(self) -> dict:
        return {
            "safe": self.safe,
            "age_group": self.age_group,
            "categories": self.categories,
            "scores": {c: round(s, 4) for c, s in self.scores.items()},
            "reasons": self.reasons,
            "passages": self.passages,
            "mean_score": round(self.mean_score, 4),
        }


class Screen:
    def __init__(
        self, rules: Rules, classifier: Classifier, thresholds: dict[str, dict[str, float]], passage_sentences: int
    ):
        self.rules, self.classifier, self.thresholds = rules, classifier, thresholds
        self.passage_sentences = passage_sentences

    def judge(self, text: str, age_group: str) -> Verdict:
        return self.judge_many([text], age_group)[0]

    def judge_many(self, texts: list[str], age_group: str) -> list[Verdict]:
        """One verdict per text; the classifier scores every passage of every text in one matrix product."""
        if age_group not in AGE_GROUPS:
            raise ValueError(f"unknown age group {age_group!r}: one of {', '.join(AGE_GROUPS)}")
        cut = [sentence_runs(t, self.passage_sentences) or ([t] if t.strip() else []) for t in texts]
        flat = [p for ps in cut for p in ps]
        scores = iter(self.classifier.scores(flat))
        return [self._verdict(ps, [next(scores)[age_group] for _ in ps], age_group) for ps in cut]

    def _verdict(self, pieces: list[str], scores: list[dict[str, float]], age_group: str) -> Verdict:
        limits = self.thresholds[age_group]
        top = dict.fromkeys(SAFETY_CATEGORIES, 0.0)
        failed, reasons, highest = set(), [], []
        for passage, score in zip(pieces, scores):
            shown = passage if len(passage) <= _SHOWN else passage[: _SHOWN - 1] + "…"
            hits = [hit for hit in self.rules.hits(passage) if hit.flags(age_group)]
            highest.append(1.0 if hits else max(score.values(), default=0.0))
            for hit in hits:
                top[hit.category] = 1.0
                failed.add(hit.category)
                reasons.append(
                    {
                        "category": hit.category,
                        "source": "rule",
                        "passage": shown,
                        "detail": f"{hit.text!r} ({hit.term}: {_allowed(hit.allowed_from)})",
                    }
                )
            for category, p in score.items():
                top[category] = max(top[category], p)
                if p >= limits[category]:
                    failed.add(category)
                    reasons.append(
                        {
                            "category": category,
                            "source": "classifier",
                            "passage": shown,
                            "detail": f"score {p:.2f} >= {limits[category]:g} for ages {age_group}",
                        }
                    )
        failed_in_order = [c for c in SAFETY_CATEGORIES if c in failed]
        mean = sum(highest) / len(highest) if highest else 0.0
        return Verdict(not failed, age_group, failed_in_order, top, reasons, len(pieces), mean)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "passage_sentences": self.passage_sentences,
            "thresholds": self.thresholds,
            "lexicon": self.rules.lexicon,
            "classifier": self.classifier.to_json(),
        }


def _allowed(level: str) -> str:
    return "for no child" if level == "never" else f"from ages {level}"


def load_screen(folder: str | Path) -> Screen:
    """The screen the ``safety`` stage wrote to ``folder``; a clear error when there is none."""
    path = Path(folder) / BUNDLE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{folder}: no content screen here (run `dvc repro safety`)") from None
    except json.JSONDecodeError as err:
        raise SourceError(f"{path}: not a screen bundle ({err})") from None
    if saved.get("format") != FORMAT:
        raise SourceError(f"{path}: screen format {saved.get('format')!r}, this code reads {FORMAT}")
    return Screen(
        Rules(saved["lexicon"]),
        Classifier.from_json(saved["classifier"]),
        saved["thresholds"],
        saved["passage_sentences"],
    )

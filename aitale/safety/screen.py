"""The content screen: is a text fit for an age group, which categories does it touch, and where and why.

A text is read with look-alike letters as the Latin ones they mimic (:mod:`aitale.safety.confusables`),
then judged passage by passage (runs of ``passage_sentences`` whole sentences:
:func:`aitale.data.text.sentence_runs`), so one brutal paragraph fails a long gentle tale.
A passage fails for an age group when a rule listed for older readers hits it, or when the classifier's
``unsafe`` score reaches that age group's threshold; the categories it fails under are then those whose
own score reaches their threshold, or else the one that scores highest. The bundle the ``safety``
stage writes (``models/safety``: ``screen.json`` and the classifier's numbers in ``arrays.npz``) holds
the lexicon, the concepts, the look-alike table, the classifier and the thresholds.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aitale.data.text import sentence_runs
from aitale.errors import SourceError
from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.safety.classifier import UNSAFE, Classifier, Featurizer
from aitale.safety.concepts import Concepts
from aitale.safety.confusables import fold
from aitale.safety.profanity import Profanity
from aitale.safety.rules import Rules

BUNDLE = "screen.json"
ARRAYS = "arrays.npz"
FORMAT = 2
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
    unsafe: float = 0.0  # the classifier's highest score, over the passages, that the text is not for this age group

    def to_json(self) -> dict:
        return {
            "safe": self.safe,
            "age_group": self.age_group,
            "categories": self.categories,
            "scores": {c: round(s, 4) for c, s in self.scores.items()},
            "reasons": self.reasons,
            "passages": self.passages,
            "mean_score": round(self.mean_score, 4),
            "unsafe": round(self.unsafe, 4),
        }


class Screen:
    def __init__(
        self,
        rules: Rules,
        classifier: Classifier,
        thresholds: dict[str, dict[str, float]],
        passage_sentences: int,
        alikes: dict[str, str] | None = None,
        categories_fail: bool = False,
    ):
        self.rules, self.classifier, self.thresholds = rules, classifier, thresholds
        self.passage_sentences, self.alikes = passage_sentences, alikes or {}
        self.categories_fail = categories_fail  # the screen before this one: a category head alone failed a passage

    def judge(self, text: str, age_group: str) -> Verdict:
        return self.judge_many([text], age_group)[0]

    def judge_shown(self, parts: Sequence[str], age_group: str) -> Verdict:
        """What a child is shown, judged as shown: its ``parts`` (a title, the prompt, the story) in order, each
        part starting a new passage, so a harmless continuation does not hide the prompt that led to it."""
        return self.judge_many(["\n\n".join(p.strip() for p in parts if p.strip())], age_group)[0]

    def judge_many(self, texts: list[str], age_group: str) -> list[Verdict]:
        """One verdict per text; the classifier scores every passage of every text at once."""
        if age_group not in AGE_GROUPS:
            raise ValueError(f"unknown age group {age_group!r}: one of {', '.join(AGE_GROUPS)}")
        texts = [fold(t, self.alikes) for t in texts]
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
            categories = {c: p for c, p in score.items() if c != UNSAFE}
            highest.append(1.0 if hits else max(categories.values(), default=0.0))
            for hit in hits:
                top[hit.category] = 1.0
                failed.add(hit.category)
                detail = f"{hit.text!r} ({hit.term}: {_allowed(hit.allowed_from)})"
                reasons.append({"category": hit.category, "source": "rule", "passage": shown, "detail": detail})
            reached = [c for c, p in categories.items() if p >= limits[c]]
            flagged = reached if self.categories_fail else []
            if score[UNSAFE] >= limits[UNSAFE]:  # the category heads only name what the unsafe head fails
                flagged = reached or [
                    max(SAFETY_CATEGORIES, key=lambda c: (categories[c], -SAFETY_CATEGORIES.index(c)))
                ]
            for category in SAFETY_CATEGORIES:
                top[category] = max(top[category], categories[category])
                if category in flagged:
                    failed.add(category)
                    detail = (
                        f"score {score[UNSAFE]:.2f} >= {limits[UNSAFE]:g} for ages {age_group}; "
                        f"{category} {categories[category]:.2f}"
                    )
                    reasons.append({"category": category, "source": "classifier", "passage": shown, "detail": detail})
        failed_in_order = [c for c in SAFETY_CATEGORIES if c in failed]
        mean = sum(highest) / len(highest) if highest else 0.0
        unsafe = max((s[UNSAFE] for s in scores), default=0.0)
        return Verdict(not failed, age_group, failed_in_order, top, reasons, len(pieces), mean, unsafe)

    def save(self, folder: str | Path) -> None:
        """The bundle into ``folder`` (an empty folder: the stage writes it inside :func:`aitale.io.atomic_dir`)."""
        classifier, arrays = self.classifier.to_bundle()
        featurizer = self.classifier.featurizer
        profanity = featurizer.profanity
        saved = {
            "format": FORMAT,
            "passage_sentences": self.passage_sentences,
            "thresholds": self.thresholds,
            "lexicon": self.rules.lexicon,
            "concepts": featurizer.concepts.lexicon if featurizer.concepts else None,
            "alikes": self.alikes,
            "classifier": classifier,
            "profanity": {"vocabulary": profanity.vocabulary} if profanity else None,
        }
        if profanity:
            arrays |= {f"profanity_{k}": np.asarray(profanity.saved[k]) for k in ("idf", "coef", "intercept", "a", "b")}
        (Path(folder) / BUNDLE).write_text(json.dumps(saved, sort_keys=True, ensure_ascii=False), encoding="utf-8")
        _write_npz(Path(folder) / ARRAYS, arrays)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` with fixed member dates and order, so the same screen is the same bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(arrays[name]), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buffer.getvalue())


def _allowed(level: str) -> str:
    return "for no child" if level == "never" else f"from ages {level}"


def load_screen(folder: str | Path) -> Screen:
    """The screen the ``safety`` stage wrote to ``folder``; a clear error when there is none."""
    path = Path(folder) / BUNDLE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        arrays = dict(np.load(Path(folder) / ARRAYS, allow_pickle=False)) if saved.get("format") == FORMAT else {}
    except FileNotFoundError as err:
        raise SourceError(
            f"{folder}: no content screen here ({Path(err.filename).name}; run `dvc repro safety`)"
        ) from None
    except (json.JSONDecodeError, ValueError, zipfile.BadZipFile) as err:
        raise SourceError(f"{path}: not a screen bundle ({err})") from None
    if saved.get("format") != FORMAT:
        raise SourceError(f"{path}: screen format {saved.get('format')!r}, this code reads {FORMAT}")
    profanity = None
    if saved["profanity"]:
        numbers = {k: arrays[f"profanity_{k}"] for k in ("idf", "coef", "intercept", "a", "b")}
        profanity = Profanity({"vocabulary": saved["profanity"]["vocabulary"], **numbers})
    concepts = Concepts(saved["concepts"]) if saved["concepts"] else None
    rules = Rules(saved["lexicon"])
    featurizer = Featurizer(saved["classifier"]["features"], concepts, profanity, rules.excused)
    return Screen(
        rules,
        Classifier.from_bundle(saved["classifier"], arrays, featurizer),
        saved["thresholds"],
        saved["passage_sentences"],
        saved["alikes"],
    )

"""The screen's classifier: logistic regressions over a passage's words, concepts, relations and letter runs.

A passage is counted in blocks, each a TF-IDF row of its own (scikit-learn's ``TfidfVectorizer`` with
``sublinear_tf``, l2-normalised per block), side by side:

- ``words``: its lemmas, pairs of neighbouring lemmas, and (with a concept lexicon) its ``c:`` concepts
  and ``r:`` verb-object relations (:mod:`aitale.safety.concepts`); with ``idioms``, a word inside one of
  the rules' exception phrases counts as an idiom's word ("killed time": ``i:kill i:time``), never as the
  lemma, concept or relation it would be alone;
- ``chars``: runs of 3 to 5 letters inside each word, with its edges ("smothered" -> " sm", "ther", "red "):
  a word never seen in training still shares its stem with one that was;
- ``profanity``: alt-profanity-check's score (:mod:`aitale.safety.profanity`), one column.

Per age group, one head scores that the passage is not acceptable for it at all (``unsafe``) and one per
category that it is not acceptable for it in that category. Fitted with scikit-learn (:func:`fit`), saved as
plain numbers (:meth:`Classifier.to_json`): scoring is numpy only, so the server needs neither scikit-learn
nor a pickle. ``tests/test_safety.py`` pins the scores to scikit-learn's own ``predict_proba``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from aitale.labels import AGE_GROUPS, SAFETY_CATEGORIES
from aitale.safety.concepts import Concepts
from aitale.safety.lemmas import Token, tokens
from aitale.safety.profanity import Profanity

UNSAFE = "unsafe"  # the head that judges a passage for an age group whatever the category
HEADS = (UNSAFE, *SAFETY_CATEGORIES)
BLOCKS = ("words", "chars", "profanity")
CHARS = (3, 5)


class Featurizer:
    """What a passage is counted by: the ``features`` it uses (of pairs, concepts, relations) and their data."""

    def __init__(
        self,
        features: Sequence[str],
        concepts: Concepts | None,
        profanity: Profanity | None,
        excused: Callable[[str], set[int]] | None = None,  # with ``idioms``: the words an exception covers
    ):
        self.features, self.concepts, self.profanity = tuple(features), concepts, profanity
        self.excused = excused if "idioms" in self.features else None

    def words(self, text: str) -> list[str]:
        found = tokens(text)
        if self.excused is not None and (idiom := self.excused(text)):
            found = tuple(_as_idiom(t) if i in idiom else t for i, t in enumerate(found))
        lemmas = [t.feature for t in found]
        out = list(lemmas)
        if "pairs" in self.features:
            out += [f"{a} {b}" for a, b in zip(lemmas, lemmas[1:])]
        if self.concepts is not None and ({"concepts", "relations"} & set(self.features)):
            extra = self.concepts.features(text, found)
            out += [f for f in extra if ("concepts" if f.startswith("c:") else "relations") in self.features]
        return out

    @staticmethod
    def chars(text: str) -> list[str]:
        out = []
        for word in text.lower().split():
            padded = f" {word} "
            out += [padded[i : i + n] for n in range(CHARS[0], CHARS[1] + 1) for i in range(len(padded) - n + 1)]
        return out

    def blocks(self) -> list[str]:
        return [b for b in BLOCKS if b == "words" or b in self.features]


def _as_idiom(token: Token) -> Token:
    # no forms and no verb: no concept or relation is read into "kill" in "kill time"
    return token._replace(feature=f"i:{token.feature}", forms=frozenset(), verb=None)


def targets(passages, age_group: str, head: str) -> np.ndarray:
    """1 where a passage is not acceptable for ``age_group`` (in category ``head``, unless it is ``unsafe``)."""
    return np.array([p.unsafe_for(age_group) and (head == UNSAFE or head in p.categories) for p in passages], int)


class Classifier:
    def __init__(self, featurizer: Featurizer, blocks: dict[str, dict], heads: dict[str, dict[str, dict]]):
        self.featurizer, self.blocks, self.heads = featurizer, blocks, heads
        self._keys = [(a, h) for a in AGE_GROUPS for h in HEADS]
        self._coef = np.array([heads[a][h]["coef"] for a, h in self._keys], dtype=np.float64)
        self._intercept = np.array([heads[a][h]["intercept"] for a, h in self._keys], dtype=np.float64)
        self._idf = {name: np.asarray(b["idf"], dtype=np.float64) for name, b in blocks.items() if "idf" in b}

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, age groups x heads) logits, the heads in the order of ``AGE_GROUPS`` x ``HEADS``."""
        out = np.tile(self._intercept, (len(texts), 1))
        profanity = self.featurizer.profanity
        scores = profanity.scores(texts) if "profanity" in self.blocks and profanity is not None else None
        for i, text in enumerate(texts):
            offset = 0
            for name, block in self.blocks.items():
                if name == "profanity":
                    out[i] += self._coef[:, offset] * scores[i]
                    offset += 1
                    continue
                terms = self.featurizer.words(text) if name == "words" else Featurizer.chars(text)
                columns, values = _tfidf(terms, block["vocabulary"], self._idf[name])
                out[i] += self._coef[:, offset + columns] @ values
                offset += len(block["idf"])
        return out

    def scores(self, texts: Sequence[str]) -> list[dict[str, dict[str, float]]]:
        """Per text: {age group: {head: probability}}."""
        if not texts:
            return []
        probs = 1 / (1 + np.exp(-self.logits(texts)))
        return [
            {a: {h: float(row[k]) for k, (a2, h) in enumerate(self._keys) if a2 == a} for a in AGE_GROUPS}
            for row in probs
        ]

    def to_bundle(self) -> tuple[dict, dict[str, np.ndarray]]:
        """What the screen's bundle holds: the vocabularies (JSON) and the numbers (arrays)."""
        saved = {"features": list(self.featurizer.features), "blocks": {}}
        arrays = {"coef": self._coef, "intercept": self._intercept}
        for name, block in self.blocks.items():
            saved["blocks"][name] = {"vocabulary": block["vocabulary"]} if "vocabulary" in block else {}
            if name in self._idf:
                arrays[f"idf_{name}"] = self._idf[name]
        return saved, arrays

    @classmethod
    def from_bundle(cls, saved: dict, arrays, featurizer: Featurizer) -> Classifier:
        blocks = {  # in BLOCKS order, as fitted: the JSON holds them sorted by name
            name: {**saved["blocks"][name], **({"idf": arrays[f"idf_{name}"]} if f"idf_{name}" in arrays else {})}
            for name in BLOCKS
            if name in saved["blocks"]
        }
        keys = [(a, h) for a in AGE_GROUPS for h in HEADS]
        heads = {a: {} for a in AGE_GROUPS}
        for k, (a, h) in enumerate(keys):
            heads[a][h] = {"coef": arrays["coef"][k], "intercept": float(arrays["intercept"][k])}
        return cls(featurizer, blocks, heads)


def fit(passages, featurizer: Featurizer, *, regularization: float, min_df: int, seed: int):
    """Fitted scikit-learn pieces ({block: vectorizer}, {(age, head): model}, the matrix) and the Classifier."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts = [p.text for p in passages]
    vectorizers, parts, blocks = {}, [], {}
    for name in featurizer.blocks():
        if name == "profanity":
            parts.append(csr_matrix(featurizer.profanity.scores(texts)[:, None]))
            blocks[name] = {}
            continue
        analyzer = featurizer.words if name == "words" else Featurizer.chars
        # letter runs: only those in a few passages, else most of the vocabulary is one passage's spelling
        vectorizer = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True, min_df=min_df if name == "words" else 3)
        parts.append(vectorizer.fit_transform(texts))
        vectorizers[name] = vectorizer
        blocks[name] = {
            "vocabulary": {t: int(i) for t, i in sorted(vectorizer.vocabulary_.items())},
            "idf": vectorizer.idf_,
        }
    matrix = hstack(parts).tocsr()
    models, heads = {}, {a: {} for a in AGE_GROUPS}
    for a in AGE_GROUPS:
        for h in HEADS:
            y = targets(passages, a, h)
            if y.min() == y.max():
                raise ValueError(f"no passage {'is' if y.max() == 0 else 'is not'} {h} for ages {a}: cannot fit")
            model = LogisticRegression(C=regularization, class_weight="balanced", solver="liblinear", random_state=seed)
            models[a, h] = model.fit(matrix, y)
            heads[a][h] = {"coef": model.coef_[0], "intercept": float(model.intercept_[0])}
    return vectorizers, models, matrix, Classifier(featurizer, blocks, heads)


def _tfidf(terms: list[str], vocabulary: dict[str, int], idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A TF-IDF row as TfidfVectorizer(sublinear_tf=True) has it: (columns, values)."""
    counts = [(j, n) for term, n in Counter(terms).items() if (j := vocabulary.get(term)) is not None]
    columns = np.array([j for j, _ in counts], dtype=np.int64)
    values = np.array([1 + math.log(n) for _, n in counts]) * idf[columns]
    norm = np.linalg.norm(values)
    return columns, values / norm if norm else values

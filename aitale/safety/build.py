"""The screen the ``safety`` stage writes: fitted on the labelled train part, measured on the test part."""

from __future__ import annotations

from collections import Counter

from aitale.labels import AGE_GROUPS
from aitale.params import SafetyParams
from aitale.safety import classifier
from aitale.safety.labelled import Passage
from aitale.safety.measure import judges, report
from aitale.safety.rules import Rules
from aitale.safety.screen import Screen


def build(passages: list[Passage], lexicon: dict, params: SafetyParams) -> tuple[Screen, dict]:
    """The screen, and its metrics: each screen's precision and recall on the test part, per age policy."""
    train = [p for p in passages if p.split == "train"]
    test = [p for p in passages if p.split == "test"]
    if not train or not test:
        raise ValueError("the labelled passages need both a train and a test part")
    _, _, fitted = classifier.fit(
        [p.text for p in train],
        [p.categories for p in train],
        [p.youngest for p in train],
        regularization=params.regularization,
        min_df=params.min_df,
        seed=params.seed,
    )
    screen = Screen(Rules(lexicon), fitted, params.thresholds, params.passage_sentences)
    metrics = {
        "passages": {"train": len(train), "test": len(test)},
        "test_kinds": dict(sorted(Counter(p.kind for p in test).items())),
        "features": len(fitted.vocabulary),
        "test": {age: {name: report(test, judge, age) for name, judge in judges(screen).items()} for age in AGE_GROUPS},
    }
    return screen, metrics

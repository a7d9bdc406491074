"""The four classification tasks, their labelled passages, training, scoring, and the judges that use them.

Story labels (theme, style, age) come from the custom stories' front matter: every passage of a
story carries its story's labels, and a story is judged by the mean over its passages. Emotion
labels are per passage (``data/emotion``). Stories of the train split train; the others are
held out, so no story is seen on both sides. Each task folder holds the head, the baseline
(``baseline.json``) and ``judge.json``, which names the one that scored better on the held-out
stories: that one judges stories in the evaluation. The head is a linear probe on the frozen trunk or,
where ``classify.fine_tune_epochs`` asks and it scores better on the held-out stories, the trunk and score
layer fine-tuned together; ``metrics/classify.json`` records the scores of both (``probe``,
``fine_tuned``).
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from aitale.data.text import passages
from aitale.io import write_json
from aitale.labels import AGE_GROUPS, STYLES, THEMES
from aitale.modeling.baseline import (
    Baseline,
    Example,
    SavedBaseline,
    Task,
    baseline_to_json,
    by_story,
    macro_f1,
    predictions,
)
from aitale.modeling.heads import (
    build_head,
    feature_probabilities,
    features,
    fine_tune,
    fit_score_layer,
    head_probabilities,
)
from aitale.modeling.model import model_context
from aitale.params import ClassifyParams

log = logging.getLogger(__name__)

EMOTIONS = ("joy", "sadness", "fear", "anger", "surprise", "calm")  # data/emotion/README.md defines them
STORY_TASKS = ("theme", "style", "age")
JUDGE_FILE, BASELINE_FILE = "judge.json", "baseline.json"


@dataclass(frozen=True)
class Dataset:
    task: Task
    train: list[Example]
    heldout: list[Example]


def datasets_for(splits: dict[str, list[dict]], emotion_rows: list[dict], params: ClassifyParams) -> dict[str, Dataset]:
    """The labelled passages of every task, train and held-out, from the prepare stage's splits."""
    stories = {
        name: [r for r in records if r["source"] == "custom" and not r["augmented"]] for name, records in splits.items()
    }
    theme_counts = Counter(t for r in stories["train"] for t in r["themes"])
    themes = tuple(t for t in THEMES if theme_counts[t] >= params.min_theme_stories)
    tasks = {
        "theme": Task("theme", themes, multi_label=True),
        "style": Task("style", STYLES),
        "age": Task("age", AGE_GROUPS),
    }
    label_of = {
        "theme": lambda r: tuple(t for t in r["themes"] if t in themes),
        "style": lambda r: (r["style"],),
        "age": lambda r: (r["age_group"],),
    }
    data = {}
    for name, task in tasks.items():
        sides = {
            side: [
                Example(text, label_of[name](r), r["id"])
                for r in records
                if label_of[name](r)
                for text in passages(r["text"], params.passage_sentences)
            ]
            for side, records in stories.items()
        }
        data[name] = Dataset(task, sides["train"], sides["heldout"])
    side_of = {r["id"]: side for side, records in stories.items() for r in records}
    emotion = {"train": [], "heldout": []}
    for row in emotion_rows:
        side = side_of.get(f"ai-tale/{row['story']}")
        if side is not None:  # a story the prepare stage removed or held out of every split is not used
            emotion[side].append(Example(row["text"], (row["emotion"],), row["story"]))
    data["emotion"] = Dataset(Task("emotion", EMOTIONS), emotion["train"], emotion["heldout"])
    if params.max_train_passages:
        rng = random.Random(params.seed)
        data = {
            name: Dataset(d.task, rng.sample(d.train, min(len(d.train), params.max_train_passages)), d.heldout)
            for name, d in data.items()
        }
    return data


def train_heads(model_dir: str | Path, data: dict[str, Dataset], params: ClassifyParams, output: Path) -> dict:
    """Train every head and its baseline, save them under ``output/<task>``, and return their scores."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    storyteller = AutoModelForCausalLM.from_pretrained(model_dir)
    max_tokens = min(params.max_tokens, model_context(storyteller))
    metrics = {"heads": {}, "max_tokens": max_tokens, "fine_tune_epochs": params.fine_tune_epochs}
    probe = build_head(storyteller, Task("probe", ("a", "b")))  # the frozen trunk, shared by every probe
    texts = sorted({ex.text for d in data.values() for ex in (*d.train, *d.heldout)})
    known = dict(zip(texts, features(probe, tokenizer, texts, max_tokens)))
    for name, dataset in data.items():
        log.info(
            "%s: %d labels, %d train passages, %d held out",
            name,
            len(dataset.task.labels),
            len(dataset.train),
            len(dataset.heldout),
        )
        metrics["heads"][name] = train_task(storyteller, tokenizer, dataset, known, params, max_tokens, output / name)
    return metrics


def train_task(
    storyteller, tokenizer, dataset: Dataset, known: dict, params: ClassifyParams, max_tokens: int, folder: Path
) -> dict:
    """One task's head and baseline, saved in ``folder`` with ``judge.json``; their held-out scores."""
    task = dataset.task
    head, kind, heads = fitted_head(storyteller, tokenizer, dataset, known, params, max_tokens)
    baseline = Baseline(task, params.seed).fit(dataset.train)
    texts = [ex.text for ex in dataset.heldout]
    scores = {
        "head": heads[kind],
        "baseline": score(task, dataset.heldout, baseline.probabilities(texts), params.threshold),
    }
    key = judged_by(task)
    chosen = "head" if scores["head"][key] >= scores["baseline"][key] else "baseline"
    head.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_json(folder / BASELINE_FILE, baseline_to_json(baseline))
    write_json(
        folder / JUDGE_FILE,
        {
            "chosen": chosen,
            "head_kind": kind,
            "max_tokens": max_tokens,
            "passage_sentences": params.passage_sentences,
            "threshold": params.threshold,
            "story_label": task.name in STORY_TASKS,
        },
    )
    return {
        "labels": list(task.labels),
        "train_passages": len(dataset.train),
        "heldout_passages": len(dataset.heldout),
        "heldout_stories": len({ex.group for ex in dataset.heldout}),
        **scores,
        "chosen": chosen,
        "head_kind": kind,
        **heads,
    }


def fitted_head(storyteller, tokenizer, dataset: Dataset, known: dict, params: ClassifyParams, max_tokens: int):
    """The linear probe on the frozen trunk and, where ``fine_tune_epochs`` asks, the fine-tuned head: the one
    that scores better on the held-out stories (the probe on a tie), its kind, and the scores of both."""
    task = dataset.task
    probe = build_head(storyteller, task)
    train_features = np.stack([known[ex.text] for ex in dataset.train])
    fit_score_layer(probe, task, dataset.train, train_features, params.regularization, params.seed)
    texts = [ex.text for ex in dataset.heldout]
    held_out = np.stack([known[text] for text in texts]) if texts else np.zeros((0, storyteller.config.n_embd))
    scores = {"probe": score(task, dataset.heldout, feature_probabilities(probe, held_out), params.threshold)}
    scores["fine_tuned"] = None
    if not params.fine_tune_epochs:
        return probe, "probe", scores
    tuned = fine_tune(
        probe,
        tokenizer,
        task,
        dataset.train,
        max_tokens,
        epochs=params.fine_tune_epochs,
        learning_rate=params.fine_tune_learning_rate,
        batch_size=params.fine_tune_batch_size,
        seed=params.seed,
    )
    probabilities = head_probabilities(tuned, tokenizer, texts, max_tokens)
    scores["fine_tuned"] = score(task, dataset.heldout, probabilities, params.threshold)
    key = judged_by(task)
    log.info("%s: macro-F1 %.3f probe, %.3f fine-tuned", task.name, scores["probe"][key], scores["fine_tuned"][key])
    if scores["fine_tuned"][key] > scores["probe"][key]:
        return tuned, "fine_tuned", scores
    return probe, "probe", scores


def judged_by(task: Task) -> str:
    """The score that picks between two classifiers of ``task``: per story for the story labels."""
    return "macro_f1_stories" if task.name in STORY_TASKS else "macro_f1"


def score(task: Task, examples: list[Example], probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Macro-F1 per held-out passage and, for story labels, per story (mean of its passages)."""
    targets = task.targets(examples)
    result = {"macro_f1": round(macro_f1(task, targets, predictions(task, probabilities, threshold)), 4)}
    if task.name in STORY_TASKS:
        groups, story_probs = by_story(examples, probabilities)
        first = {ex.group: i for i, ex in reversed(list(enumerate(examples)))}
        story_targets = targets[[first[g] for g in groups]]
        result["macro_f1_stories"] = round(macro_f1(task, story_targets, predictions(task, story_probs, threshold)), 4)
    return result


class Judge:
    """One task's better classifier (as ``judge.json`` names it), scoring whole stories.

    ``use="baseline"`` judges with the TF-IDF baseline whichever won: it learned from the team's labels only,
    never from the storyteller whose stories it judges."""

    def __init__(self, folder: str | Path, use: str | None = None):
        folder = Path(folder)
        self.settings = json.loads((folder / JUDGE_FILE).read_text(encoding="utf-8"))
        self.baseline = SavedBaseline(json.loads((folder / BASELINE_FILE).read_text(encoding="utf-8")))
        self.task = self.baseline.task
        self.chosen = use or self.settings["chosen"]
        if self.chosen not in ("head", "baseline"):
            raise ValueError(f"a judge uses the head or the baseline, not {self.chosen!r}")
        if self.chosen == "head":
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.head = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    def story_probabilities(self, stories: list[str]) -> np.ndarray:
        """(stories, labels): the mean over each story's passages."""
        cut = [passages(story, self.settings["passage_sentences"]) or [story] for story in stories]
        flat = [p for parts in cut for p in parts]
        examples = [Example(p, (), str(i)) for i, parts in enumerate(cut) for p in parts]
        if self.chosen == "head":
            probs = head_probabilities(self.head, self.tokenizer, flat, self.settings["max_tokens"])
        else:
            probs = self.baseline.probabilities(flat)
        return by_story(examples, probs)[1]

    def labels(self, stories: list[str]) -> list[str]:
        """The likeliest label of each story."""
        return [self.task.labels[i] for i in self.story_probabilities(stories).argmax(1)]

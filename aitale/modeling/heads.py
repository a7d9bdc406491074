"""Classification heads on the storyteller's trunk (their baseline is in :mod:`aitale.modeling.baseline`).

A head is a ``GPT2ForSequenceClassification`` whose transformer is the trained storyteller's,
frozen, and whose score layer is fitted on labelled passages (a linear probe): theme
(multi-label), style, age group and emotion. It reads a passage followed by end-of-text and
classifies from the hidden state there (the last position, which has seen the whole passage). A story is
judged by the mean of its passages' probabilities. The baseline is a TF-IDF +
logistic-regression pipeline (scikit-learn) trained on the same passages. :func:`fine_tune` trains a
probe's trunk and score layer together (the classify stage keeps it where it scores better).

Everything is seeded: the same data, params and weights give the same heads and metrics.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils.class_weight import compute_class_weight
from tqdm import tqdm
from transformers import GPT2ForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from aitale.modeling.baseline import Example, Task

log = logging.getLogger(__name__)

MULTI_LABEL = "multi_label_classification"
SINGLE_LABEL = "single_label_classification"


def build_head(storyteller: PreTrainedModel, task: Task) -> GPT2ForSequenceClassification:
    """A sequence classifier whose transformer is a copy of ``storyteller``'s, with a new score layer."""
    config = storyteller.config.__class__.from_dict(storyteller.config.to_dict())
    config.num_labels = len(task.labels)
    config.id2label = dict(enumerate(task.labels))
    config.label2id = {label: i for i, label in enumerate(task.labels)}
    config.problem_type = MULTI_LABEL if task.multi_label else SINGLE_LABEL
    config.architectures = ["GPT2ForSequenceClassification"]
    head = GPT2ForSequenceClassification(config)
    head.transformer.load_state_dict(storyteller.transformer.state_dict())
    return head


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_tokens: int) -> dict[str, torch.Tensor]:
    """Each text's last ``max_tokens - 1`` tokens and end-of-text, right-padded (the head reads the last real token)."""
    rows = [tokenizer(text).input_ids[-(max_tokens - 1) :] + [tokenizer.eos_token_id] for text in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def features(
    head: GPT2ForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_tokens: int,
    batch_size: int = 32,
) -> np.ndarray:
    """(n, n_embd): the trunk's hidden state at each text's end-of-text, which the score layer reads."""
    head.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of similar lengths pad little
    found = np.zeros((len(texts), head.config.n_embd), dtype=np.float32)
    for start in tqdm(range(0, len(order), batch_size), desc="trunk features", unit="batch", leave=False):
        rows = order[start : start + batch_size]
        batch = encode(tokenizer, [texts[i] for i in rows], max_tokens)
        hidden = head.transformer(**batch).last_hidden_state
        last = batch["attention_mask"].sum(1) - 1
        found[rows] = hidden[torch.arange(len(rows)), last].float().numpy()
    return found


def fit_score_layer(
    head: GPT2ForSequenceClassification,
    task: Task,
    examples: Sequence[Example],
    trunk_features: np.ndarray,
    regularization: float,
    seed: int,
) -> None:
    """Fit the score layer as a linear probe on the frozen trunk: logistic regression without intercept
    (the layer has no bias), classes weighted to count alike; one binary model per label when multi-label."""
    targets = task.targets(examples)
    # A few of the trunk's dimensions are far larger than the rest, which took lbfgs thousands of
    # iterations: it fits on features scaled to unit RMS, and the scale is folded back into the weights
    # (no bias needed, so the layer stays a plain matrix).
    scale = np.sqrt(np.mean(np.square(trunk_features, dtype=np.float64), axis=0)) + 1e-6
    scaled = trunk_features / scale
    weight = np.zeros((len(task.labels), trunk_features.shape[1]), dtype=np.float64)
    model = LogisticRegression(
        C=regularization, fit_intercept=False, class_weight="balanced", max_iter=5000, random_state=seed
    )
    if task.multi_label:
        for k in range(len(task.labels)):
            if 0 < targets[:, k].sum() < len(targets):
                weight[k] = model.fit(scaled, targets[:, k]).coef_[0]
    else:
        model.fit(scaled, targets)
        if len(model.classes_) == 2:  # one binary weight w: softmax over (-w/2, w/2) is sigmoid(w x)
            weight[model.classes_[0]], weight[model.classes_[1]] = -model.coef_[0] / 2, model.coef_[0] / 2
        else:
            weight[model.classes_] = model.coef_
    head.score.weight.data = torch.from_numpy((weight / scale).astype(np.float32))


@torch.no_grad()
def head_probabilities(
    head: GPT2ForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_tokens: int,
    batch_size: int = 32,
) -> np.ndarray:
    """(n, labels) probabilities: sigmoid per label for multi-label heads, softmax otherwise."""
    head.eval()
    parts = []
    for start in range(0, len(texts), batch_size):
        logits = head(**encode(tokenizer, texts[start : start + batch_size], max_tokens)).logits.float()
        parts.append(to_probabilities(head, logits))
    return torch.cat(parts).numpy() if parts else np.zeros((0, head.config.num_labels))


def feature_probabilities(head: GPT2ForSequenceClassification, trunk_features: np.ndarray) -> np.ndarray:
    """What ``head_probabilities`` gives for texts whose ``features`` are known, without the trunk again."""
    logits = torch.from_numpy(trunk_features) @ head.score.weight.detach().float().T
    return to_probabilities(head, logits).numpy()


def fine_tune(
    probe: GPT2ForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    examples: Sequence[Example],
    max_tokens: int,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> GPT2ForSequenceClassification:
    """A copy of ``probe`` whose trunk and score layer are trained together on ``examples`` (AdamW, the probe's
    score layer as the start, passages in a seeded order, classes weighted to count alike as the probe's)."""
    head = copy.deepcopy(probe)
    targets = torch.from_numpy(task.targets(examples))
    loss = weighted_loss(task, targets)
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=0.0)
    torch.manual_seed(seed)  # dropout
    order = torch.Generator().manual_seed(seed)
    head.train()
    for epoch in range(epochs):
        batches = torch.randperm(len(examples), generator=order).split(batch_size)
        for rows in tqdm(batches, desc=f"fine-tune {task.name}, epoch {epoch + 1}", unit="batch", leave=False):
            logits = head(**encode(tokenizer, [examples[i].text for i in rows], max_tokens)).logits
            optimizer.zero_grad()
            loss(logits, targets[rows]).backward()
            optimizer.step()
    return head.eval()


def weighted_loss(task: Task, targets: torch.Tensor) -> torch.nn.Module:
    """Cross-entropy with the classes weighted as the probe weighs them (scikit-learn's "balanced"); per label
    binary, positives weighted by negatives / positives, when multi-label."""
    if task.multi_label:
        positives = targets.sum(0)
        return torch.nn.BCEWithLogitsLoss(pos_weight=(len(targets) - positives) / positives.clamp(min=1))
    present = np.unique(targets.numpy())
    weights = torch.zeros(len(task.labels))
    weights[present] = torch.from_numpy(compute_class_weight("balanced", classes=present, y=targets.numpy())).float()
    return torch.nn.CrossEntropyLoss(weight=weights)


def to_probabilities(head: GPT2ForSequenceClassification, logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid per label for multi-label heads, softmax otherwise."""
    return torch.sigmoid(logits) if head.config.problem_type == MULTI_LABEL else logits.softmax(-1)

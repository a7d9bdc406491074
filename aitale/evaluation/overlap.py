"""BLEU and ROUGE of model continuations against the real continuation of each test story.

The first ``prompt_fraction`` of a story's words (after its title) is the prompt; the model
continues it, and the real text that followed, cut to the same number of words, is the
reference. sacrebleu and rouge-score are called directly: ``evaluate.load("bleu")`` would
fetch its script from the Hugging Face Hub.
"""

from __future__ import annotations

from dataclasses import dataclass

import sacrebleu
from rouge_score import rouge_scorer


@dataclass(frozen=True)
class Pair:
    prompt: str
    reference: str


def split_story(text: str, prompt_fraction: float) -> Pair:
    words = text.split()
    cut = max(1, int(len(words) * prompt_fraction))
    return Pair(prompt=" ".join(words[:cut]), reference=" ".join(words[cut:]))


def overlap_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and mean ROUGE F1, each reference cut to its hypothesis's length in words."""
    cut = [" ".join(ref.split()[: max(1, len(hyp.split()))]) for hyp, ref in zip(hypotheses, references)]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    rouge = [scorer.score(ref, hyp) for hyp, ref in zip(hypotheses, cut)]
    scores = {"bleu": sacrebleu.corpus_bleu(hypotheses, [cut]).score}
    for name in ("rouge1", "rouge2", "rougeL"):
        scores[name] = 100 * sum(r[name].fmeasure for r in rouge) / max(1, len(rouge))
    return {name: round(value, 3) for name, value in scores.items()}

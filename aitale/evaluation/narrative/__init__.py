"""The story metrics, one module per metric, each ``text -> float`` with higher better, and self-BLEU for a set.

Texts are paragraphs separated by a blank line (``normalize_text`` output). Every metric is offline and
deterministic. Coherence, arc consistency, character consistency and creativity are each half their own
``measure`` and half grammar (``aitale.evaluation.grammar.with_grammar``: the share of the text in sentences
Link Grammar parses): a shuffle of a story's words inside its sentences keeps every bag-of-words cue, and
without that half scored as well as the story (the quality ladder, ``aitale.evaluation.ladder``). Each
``measure`` is checked against the corruption it should notice (``aitale.evaluation.corruptions``);
``aitale.evaluation.metrics`` names the metrics a run reports.
"""

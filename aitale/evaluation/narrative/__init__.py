"""The story metrics, one module per metric (``text -> float``, higher is better), and self-BLEU for a set of stories.

``aitale.evaluation.metrics`` names the ones a run reports; ``aitale.evaluation.ladder`` checks that each ranks real
stories above their broken copies.
"""

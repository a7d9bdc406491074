"""Evaluation: perplexity and bits per byte, BLEU/ROUGE, narrative metrics, human ratings."""

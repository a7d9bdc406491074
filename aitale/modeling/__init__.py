"""Tokenizer, model construction, data packing and the training loop."""

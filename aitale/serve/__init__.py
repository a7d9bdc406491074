"""The story service: an HTTP API on the exported model, with continuous batching (``python -m aitale.serve``)."""

"""AI Tale: the library behind the DVC stages in ``stages/``.

Folders follow the pipeline: ``data`` (sources, cleaning, filtering, splitting),
``modeling`` (tokenizer, model, training), ``evaluation`` and ``export``.
"""

"""Model cards: the README.md in each published model folder (Hugging Face's card format).

One builder for every model the pipeline publishes (the storyteller, the specialised models,
the distilled student): a YAML header written by ``yaml.safe_dump``, then what the model is,
its data and params, its metrics and how to use it.
"""

from __future__ import annotations

import json

import yaml

from aitale.data.structure import prompt

EXAMPLE_TITLE = "The Brave Little Kettle"


def model_card(
    name: str,
    path: str,
    summary: str,
    metrics: dict,
    *,
    tags: list[str],
    base_model: str | None = None,
    data: str | None = None,
    params: dict | None = None,
) -> str:
    """The card of the model ``name`` published at ``path``; ``summary`` says what it is and how it was made."""
    header = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "language": ["en"],
        "tags": ["ai-tale", "children-stories", "dvc", *tags],
    }
    if base_model:
        header["base_model"] = base_model
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", f"# AI Tale `{name}`", "", summary, ""]
    if data:
        lines += ["## Data", data, ""]
    if params:
        lines += ["## Params", "```yaml", yaml.safe_dump(params, sort_keys=False).strip(), "```", ""]
    lines += [
        "## Metrics",
        "```json",
        json.dumps(metrics, indent=2, sort_keys=True),
        "```",
        "",
        "## Use",
        "```python",
        "from transformers import pipeline",
        f'generator = pipeline("text-generation", model="{path}")',
        f'print(generator({prompt(EXAMPLE_TITLE)!r})[0]["generated_text"])',
        "```",
        "",
    ]
    return "\n".join(lines)


def data_summary(data_metrics: dict, slice_: dict | None) -> str:
    """Which stories a model was trained on, from the prepare stage's statistics."""
    trained_on = (
        f"the train stories whose {', '.join(f'{k} is {v}' for k, v in slice_.items())}"
        if slice_
        else "the whole train split"
    )
    splits, words = data_metrics.get("stories", {}), data_metrics.get("words", {})
    counts = ", ".join(f"{splits.get(s, 0)} {s} stories ({words.get(s, 0):,} words)" for s in ("train", "val", "test"))
    return (
        f"Trained on {trained_on}. Dataset: {counts}; collections: {', '.join(sorted(data_metrics.get('loaded', {})))}."
    )

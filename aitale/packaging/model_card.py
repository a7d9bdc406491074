"""Model cards: a README.md in each model folder giving its data, params and metrics."""

from __future__ import annotations

import json

import yaml


def model_card(name: str, path: str, params: dict, train_metrics: dict, data_metrics: dict, slice_: dict | None) -> str:
    header = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "language": ["en"],
        "tags": ["ai-tale", "children-stories", "dvc"] + ([f"{k}:{v}" for k, v in slice_.items()] if slice_ else []),
        "base_model": None if params["model"]["base"] == "scratch" else params["model"]["base"],
    }
    trained_on = (f"the train stories whose {', '.join(f'{k} is {v}' for k, v in slice_.items())}, "
                  "starting from the broad `storyteller` model" if slice_ else "the whole train split")
    splits = data_metrics.get("stories", {})
    words = data_metrics.get("words", {})
    return "\n".join([
        "---",
        yaml.safe_dump({k: v for k, v in header.items() if v is not None}, sort_keys=False).strip(),
        "---",
        f"# AI Tale `{name}`",
        "",
        "A story-generation model for children's fairy tales, fables and bedtime stories, produced by the "
        "AI Tale DVC pipeline (`dvc repro`). Prompt it with `<|title|>A Title\\n<|beginning|>` to get a "
        "whole story; the structure tokens mark beginning, middle and ending.",
        "",
        "## Data",
        f"Trained on {trained_on}. Dataset: "
        + ", ".join(f"{splits.get(s, 0)} {s} stories ({words.get(s, 0):,} words)" for s in ("train", "val", "test"))
        + f"; collections: {', '.join(sorted(data_metrics.get('loaded', {})))}.",
        "",
        "## Params",
        "```yaml",
        yaml.safe_dump(params, sort_keys=False).strip(),
        "```",
        "",
        *metrics_and_use(train_metrics, path),
    ])


def metrics_and_use(metrics: dict, path: str) -> list[str]:
    """The closing sections every AI Tale model card shares."""
    return [
        "## Metrics",
        "```json",
        json.dumps(metrics, indent=2, sort_keys=True),
        "```",
        "",
        "## Use",
        "```python",
        "from transformers import pipeline",
        f'generator = pipeline("text-generation", model="{path}")',
        'print(generator("<|title|>The Brave Little Kettle\\n<|beginning|>")[0]["generated_text"])',
        "```",
        "",
    ]

"""Params for tests: the repository's params.yaml shrunk to a model that trains in seconds, one key set, and the
environment that records which keys each process reads."""

import os
from pathlib import Path

import yaml

from aitale.params import set_dotted
from tests.support.repo import REPO

TINY = {
    "model": {"vocab_size": 400, "context": 64, "n_layer": 1, "n_head": 2, "n_embd": 32},
    "train": {
        "eval_every": 3,
        "checkpoint_every": 2,
        "sample_every": 4,
        "sample_prompts": ["The Tiny Test"],
        "scratch": {"batch_size": 8, "epochs": 1, "max_steps": 6, "block_size": 64, "warmup_steps": 1},
    },
    "specialise": {
        "epochs": 1,
        "chain": {
            "age-3-5": {"parent": "storyteller", "age_group": "3-5"},
            "age-3-5-fable": {"parent": "age-3-5", "style": "fable"},
        },
    },
    "generate": {"min_new_tokens": 5, "max_new_tokens": 20},
    "evaluate": {"sample_prompts": ["The Tiny Test"], "samples_per_prompt": 1},
    "export": {"latency_contexts": [32], "latency_tokens": 4, "throughput_batch": 2, "max_bpb_stories": 2},
    "distill": {"n_layer": 1, "n_head": 2, "n_embd": 16, "epochs": 1, "batch_size": 64},
    "classify": {"max_tokens": 32, "passage_sentences": 12, "max_train_passages": 200},
    # the screen with its cheaper features and two folds (the whole one is built by tests/conftest.py's screen_dir)
    "safety": {"features": ["pairs", "concepts", "exceptions"], "folds": 2},
}


REPLACED = {"chain"}  # a list of models: a test's entries replace the repository's


def merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and key in base and key not in REPLACED
        merged[key] = merge(base[key], value) if nested else value
    return merged


def tiny_params(path: Path, **sections: dict) -> Path:
    """The repository's params.yaml shrunk to a model that trains in seconds, plus ``sections`` changes."""
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    path.write_text(yaml.safe_dump(merge(params, sections), sort_keys=False))
    return path


def set_param(where: Path, dotted: str, value) -> Path:
    """Set the dotted key of a params file (or of a project folder's params.yaml) to ``value``; returns the file."""
    path = where / "params.yaml" if where.is_dir() else where
    path.write_text(yaml.safe_dump(set_dotted(yaml.safe_load(path.read_text()), dotted, value), sort_keys=False))
    return path


def recording_params_reads(folder: Path) -> dict[str, str]:
    """Environment under which each Python process writes the params keys it reads to ``folder``
    (tests/params_reads/sitecustomize.py): pass it to ``sh`` or ``subprocess.run``."""
    path = [str(REPO / "tests" / "params_reads"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"AITALE_PARAMS_READS": str(folder), "PYTHONPATH": os.pathsep.join(path)}

"""What the tests share: running stages and the real `dvc`/`git` CLIs, tiny params, temporary projects."""

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from aitale.params import set_dotted

REPO = Path(__file__).resolve().parents[1]


def reference_corpus_dir() -> Path:
    """The ten reference Gutenberg books, laid beside the repository as ``../shared/corpus/gutenberg``."""
    return Path(os.environ.get("AITALE_CORPUS", REPO.parent / "shared" / "corpus" / "gutenberg"))


def run_stage(
    stage: str, *args: str, config: Path | None = None, env: dict[str, str] | None = None
) -> "subprocess.CompletedProcess[str]":
    """Run ``python -m stages.<stage>`` from the repository root, as DVC would (``env``: its whole environment)."""
    command = [sys.executable, "-m", f"stages.{stage}", *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)


def manifest(corpus: Path) -> dict[int, dict[str, str]]:
    lines = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return {int(row.split("\t")[0]): dict(zip(header, row.split("\t"))) for row in lines[1:]}


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


def train(root: Path, data: Path, config: Path, tokenizer: Path | None = None):
    return run_stage(
        "train",
        "--tokenizer",
        str(tokenizer or data / "tokenizer"),
        "--train",
        str(data / "processed/train.jsonl"),
        "--val",
        str(data / "processed/val.jsonl"),
        "--output-dir",
        str(root / "weights/storyteller"),
        "--checkpoints",
        str(root / "checkpoints"),
        "--live",
        str(root / "live"),
        "--speed",
        str(root / "speed"),
        "--metrics",
        str(root / "metrics/train.json"),
        config=config,
    )


def sh(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command (``dvc``, ``git``) with this interpreter's environment first on PATH; fail on error."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(env or {}),
    }
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def recording_params_reads(folder: Path) -> dict[str, str]:
    """Environment under which each Python process writes the params keys it reads to ``folder``
    (tests/params_reads/sitecustomize.py): pass it to ``sh`` or ``subprocess.run``."""
    path = [str(REPO / "tests" / "params_reads"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"AITALE_PARAMS_READS": str(folder), "PYTHONPATH": os.pathsep.join(path)}


def ran(output: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def downstream(repo: Path, stages: set[str]) -> set[str]:
    """``stages`` and every stage that depends on them, directly or not, from ``dvc dag``."""
    edges = dag_edges(repo, (repo / "dvc.yaml").read_text(), (repo / "params.yaml").read_text())
    reached, frontier = set(stages), list(stages)
    while frontier:
        stage = frontier.pop()
        for before, after in edges:
            if before == stage and after not in reached:
                reached.add(after)
                frontier.append(after)
    return reached


@functools.cache
def dag_edges(repo: Path, dvc_yaml: str, params: str) -> list[tuple[str, str]]:
    """The edges of ``dvc dag`` (each call starts dvc: cached per pipeline and params text)."""
    return re.findall(r'"([^"]+)" -> "([^"]+)"', sh("dvc", "dag", "--dot", cwd=repo))


def git_commit(repo: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=repo)
    sh(
        "git",
        "-c",
        "user.name=AI Tale tests",
        "-c",
        "user.email=tests@ai-tale.invalid",
        "commit",
        "-qm",
        message,
        cwd=repo,
    )


def make_project(root: Path, **sections: dict) -> Path:
    """What a clone of this repository holds (files git tracks, no outputs), as a new git repo on tiny params."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("dvclive/", "metrics/")) and name != "dvc.lock":
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    tiny_params(root / "params.yaml", **sections)
    sh("git", "init", "-q", "-b", "main", cwd=root)
    git_commit(root, "AI Tale on tiny params")
    return root


def clone_project(source: Path, dest: Path) -> Path:
    """A git clone of ``source`` sharing its DVC cache, with the outputs checked out: a workspace in seconds."""
    sh("git", "clone", "-q", str(source), str(dest), cwd=dest.parent)
    sh("dvc", "cache", "dir", "--local", str(source / ".dvc" / "cache"), cwd=dest)
    sh("dvc", "checkout", "-q", cwd=dest)
    return dest


DECODERS = ("gpt2", "gpt_neo")  # the decoder-only bases of the spec, built tiny by `tiny_base`
ARCHITECTURES = (*DECODERS, "t5")


def tiny_gpt2(vocab_size: int = 300, n_positions: int = 64, bos: int = 0, eos: int = 0, pad: int = 1, seed: int = 0):
    """A random 2-layer, 32-wide GPT-2 in eval mode. Its large initial weights (0.2) give peaked logits,
    so greedy decoding never falls on a near-tie that float error could flip."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_layer=2,
        n_head=2,
        n_embd=32,
        initializer_range=0.2,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    return GPT2LMHeadModel(config).eval()


def tiny_base(kind: str, tokenizer, folder: Path | None = None, seed: int = 0):
    """A random-weight model of architecture ``kind`` (2 layers, 32 wide, 64 positions) sized to ``tokenizer``;
    with ``folder``, saved there with save_pretrained and the tokenizer, as a local ``model.base``."""
    import torch
    from transformers import (
        GPTNeoConfig,
        GPTNeoForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(seed)
    if kind == "gpt2":
        model = tiny_gpt2(
            len(tokenizer), bos=ids["bos_token_id"], eos=ids["eos_token_id"], pad=ids["pad_token_id"], seed=seed
        )
    elif kind == "gpt_neo":
        config = GPTNeoConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=64,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            intermediate_size=64,
            attention_types=[[["global", "local"], 1]],
            window_size=8,  # shorter than the prompts: the local layer's window is exercised
            initializer_range=0.2,
            **ids,
        )
        model = GPTNeoForCausalLM(config)
    elif kind == "t5":
        # T5's own tokenizer is a sentencepiece file from the hub; the tiny one uses the test tokenizer
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            n_positions=64,
            initializer_factor=1.0,
            decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )
        model = T5ForConditionalGeneration(config)
    else:
        raise ValueError(f"no tiny {kind}")
    model.eval()
    if folder is not None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return model

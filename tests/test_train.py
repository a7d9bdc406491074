"""Tokenizer, train, specialise and package stages on tiny configs: real models, real files."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    pipeline,
)

from aitale.data.structure import CONTROL_TOKENS, PART_TOKENS, SPECIAL_TOKENS, prompt
from aitale.io import read_jsonl
from aitale.labels import THEMES
from aitale.modeling.tracking import loss_curve
from tests.support.params import tiny_params
from tests.support.stages import run_stage, train


def test_scratch_tokenizer_keeps_structure_tokens_whole(tiny_data):
    tokenizer = AutoTokenizer.from_pretrained(tiny_data / "tokenizer")
    assert len(tokenizer) == 400
    record = read_jsonl(tiny_data / "processed/val.jsonl")[0]
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(record["structured"]).input_ids)
    assert [t for t in tokens if t in PART_TOKENS] == list(PART_TOKENS)
    wanted = [
        f"<|age:{record['age_group']}|>",
        f"<|style:{record['style']}|>",
        *(f"<|theme:{theme}|>" for theme in THEMES if theme in record["themes"]),
    ]
    assert [t for t in tokens if t in CONTROL_TOKENS] == wanted * 3  # the story's start, middle and ending
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.eos_token == "<|endoftext|>"


def test_tokenizer_is_reproducible(tmp_path, tiny_data):
    config = tiny_params(tmp_path / "params.yaml")
    result = run_stage(
        "tokenizer",
        "--train",
        str(tiny_data / "processed/train.jsonl"),
        "--output-dir",
        str(tmp_path / "tok"),
        config=config,
    )
    assert result.returncode == 0, result.stderr
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "tok" / name).read_bytes() == (tiny_data / "tokenizer" / name).read_bytes()


def test_scratch_training_learns_and_is_tracked(scratch_run):
    root, _ = scratch_run
    metrics = json.loads((root / "metrics/train.json").read_text())
    assert metrics["steps"] == 6 and metrics["base"] == "scratch"
    assert metrics["val_loss"] < torch.log(torch.tensor(400.0)).item()  # better than uniform guessing
    assert metrics["non_padding_fraction"] == 1.0
    live, speed = root / "live/plots/metrics", root / "speed/plots/metrics"
    for curve in ("train/loss.tsv", "val/loss.tsv", "train/lr.tsv"):
        assert len((live / curve).read_text().splitlines()) > 1, curve
    for curve in ("tokens_per_second.tsv", "memory_mb.tsv", "elapsed_seconds.tsv"):  # this run's, not an output
        assert len((speed / curve).read_text().splitlines()) == 1 + 6, curve
    clock = loss_curve((live / "train/loss.tsv").read_text(), (speed / "elapsed_seconds.tsv").read_text())
    seconds = [at for at, _ in clock]
    assert len(clock) == 6 and seconds == sorted(seconds) and seconds[0] > 0  # loss against time, step by step
    assert not (live / "perf").exists()
    assert list((root / "live/plots/images/samples").glob("step-*.png"))
    assert "The Tiny Test" in next((root / "live/samples").glob("step-*.md")).read_text()


def test_output_loads_in_a_transformers_pipeline(scratch_run):
    root, _ = scratch_run
    generator = pipeline("text-generation", model=str(root / "weights/storyteller"))
    out = generator(prompt("The Tiny Test"), max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert out.startswith(prompt("The Tiny Test")) and len(out) > len(prompt("The Tiny Test"))


def specialise(name: str, root: Path, data: Path, work: Path, config: Path):
    """The specialise stage for chain entry ``name`` from the scratch run's storyteller, writing under ``work``."""
    return run_stage(
        "specialise",
        "--name",
        name,
        "--base-model",
        str(root / "weights/storyteller"),
        "--train",
        str(data / "processed/train.jsonl"),
        "--val",
        str(data / "processed/val.jsonl"),
        "--output-dir",
        str(work / "out"),
        "--checkpoints",
        str(work / "ck"),
        "--live",
        str(work / "live"),
        "--speed",
        str(work / "speed"),
        "--metrics",
        str(work / "metrics.json"),
        config=config,
    )


def test_specialised_model_reports_its_slice_against_the_broad_model(scratch_run, tiny_data):
    root, config = scratch_run
    result = specialise("age-3-5", root, tiny_data, root / "age-3-5", config)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((root / "age-3-5/metrics.json").read_text())
    assert metrics["slice"] == {"age_group": "3-5"}
    assert metrics["val_loss_change"] == pytest.approx(metrics["val_loss"] - metrics["parent_val_loss"], abs=1e-3)
    slice_size = sum(r["age_group"] == "3-5" for r in read_jsonl(tiny_data / "processed/train.jsonl"))
    assert metrics["train_stories"] == slice_size
    assert AutoModelForCausalLM.from_pretrained(root / "age-3-5/out").config.n_embd == 32


def test_a_slice_without_validation_stories_is_rejected(scratch_run, tiny_data, tmp_path):
    root, _ = scratch_run
    nobody = {"parent": "storyteller", "theme": "curiosity", "style": "fable", "age_group": "3-5"}
    config = tiny_params(tmp_path / "params.yaml", specialise={"chain": {"nobody": nobody}})
    result = specialise("nobody", root, tiny_data, tmp_path, config)
    assert result.returncode == 2 and "specialise.chain.nobody: no stories of" in result.stderr
    assert not (tmp_path / "out").exists()


def package(root: Path, weights: Path, config: Path) -> "subprocess.CompletedProcess[str]":
    return run_stage(
        "package",
        "--weights",
        str(weights),
        "--metrics",
        str(root / "metrics"),
        "--output-dir",
        str(root / "storyteller"),
        "--specialised-dir",
        str(root / "specialised"),
        config=config,
    )


@pytest.fixture
def package_inputs(scratch_run, tiny_data):
    root, config = scratch_run
    (root / "metrics/data.json").write_text((tiny_data / "data.json").read_text())
    for name in ("age-3-5", "age-3-5-fable"):  # the specialised models, copied from the broad one for this test
        if not (root / "weights" / name).exists():
            shutil.copytree(root / "weights/storyteller", root / "weights" / name)
        (root / "metrics/specialise").mkdir(parents=True, exist_ok=True)
        (root / f"metrics/specialise/{name}.json").write_text('{"val_loss": 1.0}')
    return root, config


def test_package_writes_generation_config_and_model_card(package_inputs):
    root, config = package_inputs
    result = package(root, root / "weights", config)
    assert result.returncode == 0, result.stderr
    generation = json.loads((root / "storyteller/generation_config.json").read_text())
    assert generation["max_new_tokens"] == 20 and generation["top_k"] == 50 and generation["no_repeat_ngram_size"] == 3
    card = (root / "storyteller/README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "val_loss" in card and "train stories" in card
    specialised_card = (root / "specialised/age-3-5/README.md").read_text()
    assert "whose age_group is 3-5" in specialised_card and f'model="{root}/specialised/age-3-5"' in specialised_card
    generator = pipeline("text-generation", model=str(root / "storyteller"))
    assert generator(prompt("A Test"))[0]["generated_text"].startswith(prompt("A Test"))


def test_package_refuses_models_params_no_longer_name(package_inputs, tmp_path):
    root, config = package_inputs
    weights = tmp_path / "weights"
    shutil.copytree(root / "weights", weights)
    shutil.copytree(root / "weights/storyteller", weights / "age-9-12")  # a group since removed from params
    result = package(root, weights, config)
    assert result.returncode == 2
    assert f"{weights / 'age-9-12'}: left by specialised models that params.yaml no longer names" in result.stderr


@pytest.fixture(scope="module")
def local_base(tmp_path_factory, tiny_data):
    """A tiny 'pretrained' GPT-2 saved to disk, with its own tokenizer that knows no structure tokens."""
    base = tmp_path_factory.mktemp("base")
    bpe = ByteLevelBPETokenizer()
    texts = [r["text"] for r in read_jsonl(tiny_data / "processed/train.jsonl")]
    bpe.train_from_iterator(texts, vocab_size=350, special_tokens=["<|endoftext|>"], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=128,
            n_layer=1,
            n_head=2,
            n_embd=32,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.eos_token_id,
        )
    )
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return base


def test_pretrained_base_from_a_local_folder(tmp_path, tiny_data, local_base):
    pretrained = {
        "batch_size": 4,
        "grad_accum": 2,
        "epochs": 1,
        "max_steps": 3,
        "block_size": 1024,
        "learning_rate": 5.0e-5,
        "warmup_steps": 0,
        "weight_decay": 0.0,
    }
    config = tiny_params(
        tmp_path / "params.yaml",
        model={"base": str(local_base), "context": 128},
        train={"hyperparams": "pretrained", "pretrained": pretrained},
    )
    result = run_stage(
        "tokenizer",
        "--train",
        str(tiny_data / "processed/train.jsonl"),
        "--output-dir",
        str(tmp_path / "tokenizer"),
        config=config,
    )
    assert result.returncode == 0, result.stderr
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    assert len(tokenizer) == 350 + len(SPECIAL_TOKENS) and tokenizer.pad_token == "<|pad|>"

    result = train(tmp_path, tiny_data, config, tokenizer=tmp_path / "tokenizer")
    assert result.returncode == 0, result.stderr
    assert "block_size 1024 clamped to the model's context of 128" in result.stderr
    metrics = json.loads((tmp_path / "metrics/train.json").read_text())
    assert metrics["base"] == str(local_base) and metrics["block_size"] == 128 and metrics["steps"] == 3
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "weights/storyteller")
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    base_weights = AutoModelForCausalLM.from_pretrained(local_base).transformer.h[0].attn.c_attn.weight
    assert not torch.equal(model.transformer.h[0].attn.c_attn.weight, base_weights)  # fine-tuned, not re-initialised
    assert torch.allclose(model.transformer.h[0].attn.c_attn.weight, base_weights, atol=0.05)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"model": {"base": "gpt-3"}}, "model.base: unknown base 'gpt-3'"),
        ({"train": {"scratch": {"batch_size": 0}}}, "train.scratch.batch_size: Input should be greater than 0"),
        ({"model": {"base": "gpt2", "context": 2048}}, "context: 2048 is longer than gpt2's context of 1024"),
        ({"train": {"precision": "fp16"}}, "train.precision: Input should be 'fp32' or 'bf16'"),
    ],
)
def test_invalid_training_params_are_rejected_before_any_work(tmp_path, tiny_data, sections, message):
    config = tiny_params(tmp_path / "params.yaml", **sections)
    result = train(tmp_path, tiny_data, config)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "weights").exists() and not (tmp_path / "checkpoints").exists()


def test_local_base_with_a_shorter_context_is_rejected(tmp_path, tiny_data, local_base):
    config = tiny_params(tmp_path / "params.yaml", model={"base": str(local_base), "context": 256})
    result = train(tmp_path, tiny_data, config)
    assert result.returncode == 2 and "context: 256 is longer than" in result.stderr


def test_the_learning_rate_warms_up_then_decays_linearly_to_zero():
    from aitale.modeling.trainer import linear_warmup_decay

    factor = linear_warmup_decay(warmup=4, total=12)
    assert [factor(step) for step in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [factor(step) for step in (4, 8, 12, 20)] == [1.0, 0.5, 0.0, 0.0]


def test_packed_blocks_have_no_padding_where_one_story_per_row_would(tiny_data):
    from aitale.modeling.blocks import Blocks, load_blocks, pack

    tokenizer = AutoTokenizer.from_pretrained(tiny_data / "tokenizer")
    blocks = load_blocks(tiny_data / "processed/val.jsonl", tokenizer, 64)
    assert blocks.non_padding_fraction == 1.0
    assert pack(np.arange(10), 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1]]  # the tail wraps round
    stories = [tokenizer(r["structured"]).input_ids for r in read_jsonl(tiny_data / "processed/val.jsonl")]
    longest = max(map(len, stories))
    padded = torch.tensor([ids + [tokenizer.pad_token_id] * (longest - len(ids)) for ids in stories])
    one_per_row = Blocks(padded, sum(map(len, stories)), len(stories), tokenizer.pad_token_id)
    assert one_per_row.non_padding_fraction < 0.95 and one_per_row.non_padding_fraction == pytest.approx(
        sum(map(len, stories)) / padded.numel()
    )


def test_training_stops_early_when_val_loss_stops_improving(tmp_path, tiny_data):
    config = tiny_params(
        tmp_path / "params.yaml",
        train={"eval_every": 1, "patience": 2, "scratch": {"max_steps": 40, "learning_rate": 0.5, "warmup_steps": 0}},
    )
    result = train(tmp_path, tiny_data, config)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics/train.json").read_text())
    assert metrics["stopped_early"] and metrics["steps"] < metrics["planned_steps"] == 40
    assert metrics["steps"] == metrics["best_step"] + 2  # two checks without a better val loss
    assert "early stop at step" in result.stderr

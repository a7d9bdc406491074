"""Distill stage on a tiny teacher: a smaller student that loads, has learned, and is reproducible."""

import contextlib
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    pipeline,
)

from aitale.data.structure import prompt
from aitale.io import read_jsonl, write_jsonl
from aitale.modeling.blocks import load_blocks
from aitale.modeling.distill import bits_per_byte, distill_loss
from stages import distill as stage
from tests.support.params import tiny_params
from tests.support.stages import run_stage

CONTEXT = 64
TEACHER = {"n_layer": 1, "n_head": 2, "n_embd": 32}
STUDENT = {"n_layer": 1, "n_head": 2, "n_embd": 16, "epochs": 1, "batch_size": 16, "learning_rate": 3.0e-2}
TRAIN_STORIES = 25  # the first stories of the tiny train split: about 40 steps of distillation
KEYS = {"parameters", "weights_bytes", "test_bits_per_byte", "val_loss"}


@contextlib.contextmanager
def one_thread():
    """Tiny models on one thread in this process: a tiny model's ops are too small to gain from a second
    thread, and on a loaded machine each op would wait for that thread to be scheduled. (A stage's process
    runs on the threads aitale/machine.py pins.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def stage_args(root: Path, data: Path, teacher: Path, *extra: str) -> list[str]:
    return [
        "--teacher",
        str(teacher),
        "--train",
        str(data / "train.jsonl"),
        "--val",
        str(data / "val.jsonl"),
        "--test",
        str(data / "test.jsonl"),
        "--output-dir",
        str(root / "student"),
        "--metrics",
        str(root / "metrics/distill.json"),
        "--speed-tokens",
        "16",
        *extra,
    ]


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_data) -> Path:
    """The tiny splits, with the train split cut to its first stories to keep the run short."""
    root = tmp_path_factory.mktemp("distill_data")
    processed = tiny_data / "processed"
    write_jsonl(root / "train.jsonl", read_jsonl(processed / "train.jsonl")[:TRAIN_STORIES])
    for split in ("val", "test"):
        shutil.copy(processed / f"{split}.jsonl", root / f"{split}.jsonl")
    return root


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny_data) -> Path:
    """A tiny GPT-2 teacher on the tiny tokenizer, trained here for a few seconds with a plain loop."""
    out = tmp_path_factory.mktemp("teacher")
    tokenizer = AutoTokenizer.from_pretrained(tiny_data / "tokenizer")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=CONTEXT,
            **TEACHER,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    blocks = load_blocks(tiny_data / "processed/train.jsonl", tokenizer, CONTEXT).ids
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    with one_thread():
        for _ in range(60):
            batch = blocks[torch.randint(len(blocks), (16,))]
            model(input_ids=batch, labels=batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.generation_config = GenerationConfig(
        do_sample=True, temperature=0.8, top_k=50, max_new_tokens=20, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, data, teacher):
    """The stage as DVC runs it, then again into the same folder with --bench; first files kept."""
    root = tmp_path_factory.mktemp("distill")
    config = tiny_params(root / "params.yaml", distill=STUDENT)
    with one_thread():
        first = run_stage("distill", *stage_args(root, data, teacher), config=config)
        assert first.returncode == 0, first.stderr
        shutil.copytree(root / "student", root / "first/student")
        shutil.copy(root / "metrics/distill.json", root / "first/distill.json")
        bench = run_stage(
            "distill", *stage_args(root, data, teacher, "--bench", "--bench-output", str(root / "speed.json")),
            config=config,
        )  # fmt: skip
        assert bench.returncode == 0, bench.stderr
    return root, first


def test_student_is_smaller_and_loads_in_a_pipeline(student_run, teacher):
    root, _ = student_run
    metrics = json.loads((root / "metrics/distill.json").read_text())
    assert KEYS <= metrics["teacher"].keys() and KEYS <= metrics["student"].keys()
    assert metrics["student_over_teacher"].keys() == KEYS
    assert metrics["student"]["parameters"] < metrics["teacher"]["parameters"]
    assert metrics["student"]["weights_bytes"] < metrics["teacher"]["weights_bytes"]
    assert metrics["student"]["weights_bytes"] == (root / "student/model.safetensors").stat().st_size
    assert metrics["student_over_teacher"]["parameters"] == pytest.approx(
        metrics["student"]["parameters"] / metrics["teacher"]["parameters"], abs=1e-4
    )
    assert {k: metrics["student"][k] for k in TEACHER} == {k: STUDENT[k] for k in TEACHER}
    student_config, teacher_config = AutoConfig.from_pretrained(root / "student"), AutoConfig.from_pretrained(teacher)
    assert (student_config.vocab_size, student_config.n_positions) == (teacher_config.vocab_size, CONTEXT)
    assert (root / "student/tokenizer.json").read_bytes() == (teacher / "tokenizer.json").read_bytes()
    assert (
        GenerationConfig.from_pretrained(root / "student").to_dict()
        == GenerationConfig.from_pretrained(teacher).to_dict()
    )

    generator = pipeline("text-generation", model=str(root / "student"))
    out = generator(prompt("The Tiny Test"), max_new_tokens=8, do_sample=False)[0]["generated_text"]
    assert out.startswith(prompt("The Tiny Test")) and len(out) > len(prompt("The Tiny Test"))


def test_student_has_learned(student_run, data):
    root, _ = student_run
    metrics = json.loads((root / "metrics/distill.json").read_text())
    trained = metrics["student"]["test_bits_per_byte"]
    assert trained < 0.9 * metrics["untrained_student"]["test_bits_per_byte"]
    assert metrics["student"]["val_loss"] < 0.9 * metrics["untrained_student"]["val_loss"]
    # The same check, independently: a freshly initialised student of the same shape.
    tokenizer = AutoTokenizer.from_pretrained(root / "student")
    torch.manual_seed(1)
    untrained = GPT2LMHeadModel(AutoConfig.from_pretrained(root / "student"))
    student = AutoModelForCausalLM.from_pretrained(root / "student")
    texts = [record["structured"] for record in read_jsonl(data / "test.jsonl")]
    with one_thread():
        assert trained < 0.9 * bits_per_byte(untrained, tokenizer, texts, stride=128)
        assert bits_per_byte(student, tokenizer, texts, stride=128) == pytest.approx(trained, abs=1e-3)


def test_metrics_and_model_are_reproducible_and_speed_stays_out(student_run):
    root, _ = student_run
    assert (root / "metrics/distill.json").read_bytes() == (root / "first/distill.json").read_bytes()
    for name in ("model.safetensors", "config.json", "generation_config.json", "README.md"):
        assert (root / "student" / name).read_bytes() == (root / "first/student" / name).read_bytes(), name
    assert "tokens_per_second" not in (root / "metrics/distill.json").read_text()
    speed = json.loads((root / "speed.json").read_text())["speed"]
    assert "threads_1" in speed
    for model in ("teacher", "student"):
        assert speed["threads_1"][model]["tokens_per_second"] > 0 and speed["threads_1"][model]["new_tokens"] == 16


def test_speed_is_logged_but_written_only_with_bench(student_run):
    _, first = student_run
    assert "tokens/s" in first.stderr and "speed written" not in first.stderr


def test_invalid_alpha_exits_2_before_any_work(tmp_path, data):
    config = tiny_params(tmp_path / "params.yaml", distill={**STUDENT, "alpha": 1.5})
    result = run_stage("distill", *stage_args(tmp_path, data, tmp_path / "no-teacher"), config=config)
    assert result.returncode == 2
    assert "distill.alpha: Input should be less than or equal to 1" in result.stderr
    assert not (tmp_path / "student").exists() and not (tmp_path / "metrics").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 0}, "distill.temperature: Input should be greater than 0"),
        ({"n_embd": 30, "n_head": 4}, "distill: n_embd (30) must be a multiple of n_head (4)"),
        ({"n_layer": 4, "n_embd": 64}, "distill: a student of n_layer 4, n_head 2, n_embd 64"),
    ],
)
def test_invalid_params_are_rejected_before_training(tmp_path, data, teacher, caplog, change, message):
    config = tiny_params(tmp_path / "params.yaml", distill={**STUDENT, **change})
    with caplog.at_level(logging.ERROR, logger="distill"), one_thread():
        assert stage.main([*stage_args(tmp_path, data, teacher), "--config", str(config)]) == 2
    assert message in caplog.text
    assert not (tmp_path / "student").exists() and not (tmp_path / "metrics").exists()


def test_distill_loss_is_cross_entropy_at_alpha_0_and_zero_kl_for_equal_logits():
    torch.manual_seed(0)
    logits, ids = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    loss, kl, ce = distill_loss(logits, logits.clone(), ids, temperature=2.0, alpha=0.0)
    assert kl.item() == pytest.approx(0.0, abs=1e-6)
    assert loss.item() == pytest.approx(ce.item())
    assert ce.item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), ids[:, 1:].reshape(-1)).item()
    )
    loss, kl, _ = distill_loss(logits, torch.randn(2, 5, 11), ids, temperature=2.0, alpha=1.0)
    assert kl.item() > 0 and loss.item() == pytest.approx(4.0 * kl.item())

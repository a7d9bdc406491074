"""Export: ONNX with a KV cache, INT8, TorchScript, the onnxruntime generator and the stage.

Everything runs on a tiny random GPT-2 (2 layers, 32 wide, 64 positions) built here with
the ``tiny_data`` tokenizer, so the whole file takes seconds.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GenerationConfig, GPT2LMHeadModel
from transformers.generation.logits_process import (
    MinNewTokensLengthLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from aitale.data.structure import prompt
from aitale.export import measure
from aitale.export.build import FP32, INT8, TORCHSCRIPT, check_parity, export_all
from aitale.generation.batch import generate_one
from aitale.generation.decoders import ModelFileError, OnnxDecoder, TorchScriptDecoder, full_inputs
from aitale.generation.sampling import GenerationSettings, process
from tests.support.models import tiny_gpt2
from tests.support.params import tiny_params
from tests.support.stages import run_stage

TITLES = ["The Tiny Test", "A Fox in the Snow"]
PARAMS = GenerationSettings(
    seed=3,
    do_sample=True,
    temperature=0.8,
    top_k=20,
    top_p=0.9,
    no_repeat_ngram_size=3,
    repetition_penalty=1.0,
    min_new_tokens=5,
    max_new_tokens=24,
)
GREEDY = PARAMS.but(do_sample=False, no_repeat_ngram_size=0, min_new_tokens=0)


@pytest.fixture(scope="module")
def tiny_model(tiny_data, tmp_path_factory) -> Path:
    """A random 2-layer GPT-2 saved with save_pretrained, tokenizer and generation config."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_data / "tokenizer")
    model = tiny_gpt2(
        len(tokenizer), bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id, pad=tokenizer.pad_token_id
    )
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    GenerationConfig(
        **{k: v for k, v in PARAMS.to_json().items() if k not in ("seed", "stop")},
        eos_token_id=model.config.eos_token_id,
        pad_token_id=model.config.pad_token_id,
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(tiny_model):
    return GPT2LMHeadModel.from_pretrained(tiny_model).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def exported(model, tiny_model, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exported")
    export_all(model, tiny_model, folder, opset=17)
    return folder


def decoders(folder: Path) -> dict:
    return {
        "onnx_fp32": OnnxDecoder(folder / FP32),
        "onnx_int8": OnnxDecoder(folder / INT8),
        "torchscript": TorchScriptDecoder(folder / TORCHSCRIPT),
    }


def test_export_writes_every_file_with_a_manifest(exported):
    manifest = json.loads((exported / "manifest.json").read_text())["files"]
    for name in (FP32, INT8, TORCHSCRIPT, "tokenizer.json", "config.json", "generation_config.json"):
        assert manifest[name]["bytes"] == (exported / name).stat().st_size > 0
    assert (exported / INT8).stat().st_size < 0.5 * (exported / FP32).stat().st_size


def test_logits_match_pytorch_with_and_without_past(model, exported):
    parity = check_parity(model, decoders(exported), tolerance=1e-4)
    assert max(parity["onnx_fp32"].values()) < 1e-4
    assert max(parity["torchscript"].values()) < 1e-4
    assert 0 < max(parity["onnx_int8"].values()) < 1.0  # 8-bit weights: close, not equal


def test_first_step_and_incremental_steps_give_the_same_logits(exported):
    decoder = OnnxDecoder(exported / FP32)
    ids = np.random.default_rng(0).integers(0, 300, size=(2, 10))
    whole, _ = decoder.step(*full_inputs(ids), decoder.empty_cache(2))
    logits, cache = decoder.step(*full_inputs(ids[:, :6]), decoder.empty_cache(2))
    for position in range(6, 10):
        logits, cache = decoder.step(
            ids[:, position : position + 1],
            np.ones((2, position + 1), dtype=np.int64),
            np.full((2, 1), position),
            cache,
        )
        np.testing.assert_allclose(logits[:, 0], whole[:, position], atol=1e-4)


@pytest.mark.parametrize(
    "settings",
    [GREEDY, GREEDY.but(no_repeat_ngram_size=2, min_new_tokens=10, repetition_penalty=1.3)],
    ids=["plain", "ngram-min-penalty"],
)
def test_greedy_tokens_equal_transformers_generate(model, tokenizer, exported, settings):
    prompts = [tokenizer(prompt(title)).input_ids for title in TITLES]
    references = measure.greedy_reference(model, prompts, settings)
    assert all(len(r) == settings.max_new_tokens or r[-1] == model.config.eos_token_id for r in references)
    for name, decoder in decoders(exported).items():
        if name == "onnx_int8":
            continue
        for ids, reference in zip(prompts, references):
            assert generate_one(decoder, ids, settings) == reference, name


@pytest.mark.parametrize("name", ["onnx_fp32", "onnx_int8", "torchscript"])
def test_every_exported_file_loads_and_generates(exported, tokenizer, name):
    decoder = decoders(exported)[name]  # loaded from disk afresh
    ids = tokenizer(prompt("The Tiny Test")).input_ids
    story = generate_one(decoder, ids, PARAMS)
    assert story == generate_one(decoder, ids, PARAMS)  # seeded
    assert PARAMS.min_new_tokens <= len(story) <= PARAMS.max_new_tokens
    assert all(0 <= token < len(tokenizer) for token in story)
    tokens = ids + story
    trigrams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    assert len(trigrams) == len(set(trigrams))  # no_repeat_ngram_size = 3
    assert isinstance(tokenizer.decode(story), str)
    greedy = generate_one(decoder, ids, GREEDY)
    assert len(greedy) >= 1


def test_generation_stops_at_the_context(exported, tokenizer):
    decoder = OnnxDecoder(exported / INT8)
    long_prompt = list(range(5, 60))
    story = generate_one(decoder, long_prompt, PARAMS.but(max_new_tokens=100, min_new_tokens=100))
    assert len(story) == 64 - len(long_prompt)


def test_processors_match_transformers():
    rng = np.random.default_rng(1)
    for case in range(20):
        vocab = 50
        ids = rng.integers(0, 8, size=12).tolist()
        scores = rng.normal(size=vocab).astype(np.float32) * 3
        settings = PARAMS.but(
            top_k=int(rng.integers(0, 12)),
            top_p=float(rng.uniform(0.3, 1)),
            temperature=float(rng.uniform(0.5, 1.5)),
            no_repeat_ngram_size=int(rng.integers(0, 4)),
            repetition_penalty=float(rng.choice([1.0, 1.2])),
            min_new_tokens=int(rng.integers(0, 6)),
        )
        generated = int(rng.integers(0, 6))
        ours = process(scores, ids, generated, settings, eos=3)

        input_ids, theirs = torch.tensor([ids]), torch.from_numpy(scores.copy())[None]
        steps = [
            MinNewTokensLengthLogitsProcessor(len(ids) - generated, settings.min_new_tokens, 3),
            TemperatureLogitsWarper(settings.temperature),
        ]
        if settings.repetition_penalty != 1.0:
            steps.insert(0, RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
        if settings.no_repeat_ngram_size:
            steps.insert(1, NoRepeatNGramLogitsProcessor(settings.no_repeat_ngram_size))
        if settings.top_k:
            steps.append(TopKLogitsWarper(settings.top_k))
        steps.append(TopPLogitsWarper(settings.top_p))
        for step in steps:
            theirs = step(input_ids, theirs)
        theirs = theirs[0].numpy()
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(theirs), err_msg=f"case {case}")
        kept = ~np.isinf(ours)
        np.testing.assert_allclose(ours[kept], theirs[kept], rtol=1e-5, err_msg=f"case {case}")


@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
@pytest.mark.parametrize("with_manifest", [True, False], ids=["manifest", "no-manifest"])
def test_damaged_onnx_file_gives_a_clear_error(exported, tmp_path, damage, with_manifest):
    shutil.copy(exported / INT8, tmp_path / INT8)
    if with_manifest:
        shutil.copy(exported / "manifest.json", tmp_path / "manifest.json")
    data = (tmp_path / INT8).read_bytes()
    damaged = b"\xff" * 64 + data[64:] if damage == "corrupted" else data[: len(data) // 2]
    (tmp_path / INT8).write_bytes(damaged)
    with pytest.raises(ModelFileError) as error:
        OnnxDecoder(tmp_path / INT8)
    message = str(error.value)
    assert str(tmp_path / INT8) in message and "re-run the export stage" in message
    assert damage in message or "corrupted" in message


def test_missing_file_and_damaged_torchscript_give_clear_errors(exported, tmp_path):
    with pytest.raises(ModelFileError, match="re-run the export stage"):
        OnnxDecoder(tmp_path / "absent.onnx")
    (tmp_path / TORCHSCRIPT).write_bytes((exported / TORCHSCRIPT).read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="re-run the export stage"):
        TorchScriptDecoder(tmp_path / TORCHSCRIPT)


def stage_config(path: Path, **export) -> Path:
    return tiny_params(
        path,
        export={
            "latency_contexts": [8, 60],
            "latency_tokens": 2,
            "throughput_batch": 2,
            "max_bpb_stories": 1,
            **export,
        },
        evaluate={"sample_prompts": TITLES[:1]},
    )


def export(model, data, work, output, metrics, speed, *flags):
    """The export stage on ``model`` with the tiny data's test split and the small latency settings."""
    return run_stage(
        "export",
        "--model",
        str(model),
        "--test",
        str(data / "processed/test.jsonl"),
        "--output-dir",
        str(output),
        "--metrics",
        str(metrics),
        "--speed",
        str(speed),
        *flags,
        config=stage_config(work / "params.yaml"),
    )


def test_stage_writes_the_files_and_metrics(tiny_model, tiny_data, tmp_path):
    output, metrics_path, speed_path = tmp_path / "onnx", tmp_path / "export.json", tmp_path / "speed.json"
    result = export(tiny_model, tiny_data, tmp_path, output, metrics_path, speed_path)
    assert result.returncode == 0, result.stderr
    metrics, speed = json.loads(metrics_path.read_text()), json.loads(speed_path.read_text())
    assert set(metrics["variants"]) == set(speed["variants"]) == {"pytorch", "onnx_fp32", "onnx_int8", "torchscript"}
    for name, variant in metrics["variants"].items():
        assert variant["bytes"] > 0 and variant["bits_per_byte"] > 0, name
        assert set(speed["variants"][name]["latency_ms_per_token"]) == {"8", "60"}, name
        assert speed["variants"][name]["throughput_tokens_per_s"] > 0, name
    fp32 = metrics["variants"]["onnx_fp32"]
    assert fp32["parity"]["max_abs_logit_diff"]["with_past"] < 1e-3
    assert fp32["parity"]["greedy"]["token_agreement"] == 1.0
    assert abs(fp32["bits_per_byte"] - metrics["variants"]["pytorch"]["bits_per_byte"]) < 1e-3
    assert set(metrics["goals"]) == {"int8_size_vs_onnx_fp32", "int8_bpb_increase_vs_onnx_fp32"}
    assert set(speed["goals"]) == {"int8_latency_vs_pytorch"}
    assert speed["setup"]["latency_prefill_tokens"] == {"8": 8, "60": 64 - 2 - measure.WARMUP_STEPS}
    assert metrics_path.read_text() == json.dumps(metrics, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert (output / FP32).is_file() and (output / INT8).is_file() and (output / TORCHSCRIPT).is_file()


def test_stage_fails_when_parity_is_out_of_tolerance(tiny_model, tiny_data, tmp_path):
    output = tmp_path / "onnx"
    result = export(
        tiny_model,
        tiny_data,
        tmp_path,
        output,
        tmp_path / "export.json",
        tmp_path / "speed.json",
        "--parity_tolerance",
        "1.0e-12",
    )
    assert result.returncode != 0
    assert "parity check failed" in result.stderr and "export.parity_tolerance" in result.stderr
    assert not output.exists() and not (tmp_path / "export.json").exists() and not (tmp_path / "speed.json").exists()


def test_stage_rejects_bad_params_before_work(tiny_model, tmp_path):
    result = run_stage(
        "export",
        "--model",
        str(tiny_model),
        "--test",
        str(tmp_path / "test.jsonl"),
        "--output-dir",
        str(tmp_path / "onnx"),
        "--metrics",
        str(tmp_path / "export.json"),
        "--speed",
        str(tmp_path / "speed.json"),
        "--opset",
        "9",
        config=stage_config(tmp_path / "params.yaml"),
    )
    assert result.returncode == 2
    assert "export.opset" in result.stderr

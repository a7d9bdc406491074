"""Local base folders that real users have (issue 25): a T5 saved with save_pretrained, whose config has no
position limit, and a base whose config names an end-of-text id its tokenizer does not have."""

import json

from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

from tests.support.models import tiny_gpt2
from tests.support.params import tiny_params
from tests.support.stages import run_stage


def test_check_accepts_a_t5_folder_without_n_positions(dvc_project, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(dvc_project / "models/storyteller")
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path / "t5"
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert "n_positions" not in json.loads((folder / "config.json").read_text())
    pretrained = {"hyperparams": "pretrained"}
    params = tiny_params(tmp_path / "params.yaml", model={"base": str(folder), "context": 64}, train=pretrained)
    checked = run_stage("check", config=params)
    assert checked.returncode == 0, checked.stderr
    long = tiny_params(tmp_path / "long.yaml", model={"base": str(folder), "context": 4096}, train=pretrained)
    too_long = run_stage("check", config=long)
    limit = f"context of {tokenizer.model_max_length}"  # the tokenizer states it: T5 has no position table
    assert too_long.returncode == 2 and "4096" in too_long.stderr and limit in too_long.stderr


def test_export_names_an_end_of_text_id_outside_the_vocabulary(dvc_project, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(dvc_project / "models/storyteller")
    folder = tmp_path / "base"
    model = tiny_gpt2(len(tokenizer), eos=len(tokenizer) + 7)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # the sampling settings hold end-of-text back for a few tokens, as the project's do
    settings = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**settings, "min_new_tokens": 4}))
    out = tmp_path / "out"
    result = run_stage(
        "export",
        "--model",
        str(folder),
        "--test",
        str(dvc_project / "data/processed/test.jsonl"),
        "--output-dir",
        str(out / "onnx"),
        "--metrics",
        str(out / "export.json"),
        "--speed",
        str(out / "speed.json"),
        config=dvc_project / "params.yaml",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "eos_token_id" in result.stderr and str(len(tokenizer) + 7) in result.stderr
    assert "Traceback" not in result.stderr and not (out / "onnx").exists()

"""Invalid params are rejected before any work, with a message naming the key."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aitale.errors import ParamsError
from aitale.params import DataParams, PrepareParams, load_params, load_section
from tests.support.params import set_param
from tests.support.repo import REPO


def params_with(tmp_path: Path, section: str, dotted: str, value) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return set_param(tmp_path / "params.yaml", f"{section}.{dotted}", value)


def test_repository_params_are_valid():
    assert load_params(REPO / "params.yaml").train.hp.learning_rate > 0


def test_the_check_names_every_bad_key_of_every_section_at_once(tmp_path):
    path = params_with(tmp_path, "train", "scratch.learning_rate", -1)
    set_param(path, "generate.top_p", 1.7)
    set_param(path, "distill.n_head", 3)
    result = subprocess.run(
        [sys.executable, "-m", "stages.check", "--config", str(path), "--output", str(tmp_path / "ok.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and not (tmp_path / "ok.json").exists()
    assert "train.scratch.learning_rate: Input should be greater than 0 (got -1)" in result.stderr
    assert "generate.top_p: Input should be less than or equal to 1 (got 1.7)" in result.stderr
    assert "distill: n_embd (128) must be a multiple of n_head (3)" in result.stderr


def test_the_check_applies_rules_across_sections(tmp_path):
    path = params_with(tmp_path, "model", "base", "gpt2")
    with pytest.raises(
        ParamsError, match="train.hyperparams is 'scratch' but model.base 'gpt2' trains with the 'pretrained' set"
    ):
        load_params(path)


def test_a_valid_check_writes_the_same_file_whatever_the_params(tmp_path):
    outputs = []
    for seed in (1, 2):
        path = params_with(tmp_path, "train", "seed", seed)
        result = subprocess.run(
            [sys.executable, "-m", "stages.check", "--config", str(path), "--output", str(tmp_path / f"ok{seed}.json")],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        outputs.append((tmp_path / f"ok{seed}.json").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("split.vall", 0.1, "prepare.split.vall: Extra inputs are not permitted"),
        ("min_words", "80", "prepare.min_words: Input should be a valid integer"),
        ("split.val", 0.7, "prepare.split.val: Input should be less than 0.5"),
        ("dedupe.same_tale", 0.9, "prepare.dedupe: same_tale and near_duplicate_same_title must not"),
        ("augment.methods", ["back_translation"], "prepare.augment.methods.0: Input should be"),
        ("filter", {}, "prepare.filter: Extra inputs are not permitted"),  # the old keyword filter's key
    ],
)
def test_invalid_prepare_params_name_the_key(tmp_path, dotted, value, message):
    path = params_with(tmp_path, "prepare", dotted, value)
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_section(PrepareParams, "prepare", path)


def test_bad_sha256_pin_is_rejected(tmp_path):
    path = params_with(tmp_path, "data", "gutenberg.sha256", {503: "abc"})
    with pytest.raises(ParamsError, match=r"data\.gutenberg\.sha256: book 503"):
        load_section(DataParams, "data", path)


def test_stage_rejects_invalid_params_before_any_work(tmp_path):
    path = params_with(tmp_path, "prepare", "split.test", -0.1)
    out = tmp_path / "processed"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stages.prepare",
            "--config",
            str(path),
            "--stories",
            str(REPO / "data/stories"),
            "--books",
            str(tmp_path / "none"),
            "--screen",
            str(tmp_path / "none"),
            "--output-dir",
            str(out),
            "--metrics",
            str(tmp_path / "m.json"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "prepare.split.test: Input should be greater than or equal to 0" in result.stderr
    assert not out.exists() and not (tmp_path / "m.json").exists()


def test_command_line_override_is_validated(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "stages.download", "--output-dir", str(tmp_path / "raw"), "--gutenberg.books", "[0]"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "data.gutenberg.books.0: Input should be greater than 0" in result.stderr


@pytest.mark.parametrize("stage", ["download", "prepare"])
def test_every_stage_documents_its_options(stage):
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{stage}", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "--config" in result.stdout and "--output-dir" in result.stdout
    assert "now:" in result.stdout  # current params.yaml values are shown

"""Invalid params are rejected before any work, with a message naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aitale.errors import ParamsError
from aitale.params import DataParams, PrepareParams, load_section
from tests.conftest import REPO


def params_with(tmp_path: Path, section: str, dotted: str, value) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    node = params[section]
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_repository_params_are_valid():
    load_section(DataParams, "data", REPO / "params.yaml")
    load_section(PrepareParams, "prepare", REPO / "params.yaml")


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        ("split.vall", 0.1, "prepare.split.vall: Extra inputs are not permitted"),
        ("min_words", "80", "prepare.min_words: Input should be a valid integer"),
        ("split.val", 0.7, "prepare.split.val: Input should be less than 0.5"),
        ("dedupe.same_tale", 0.9, "prepare.dedupe: Value error, same_tale and near_duplicate_same_title must not"),
        ("augment.methods", ["back_translation"], "prepare.augment.methods.0: Input should be"),
        ("filter.violence", {"terms": []}, "prepare.filter.violence.terms: List should have at least 1 item"),
    ],
)
def test_invalid_prepare_params_name_the_key(tmp_path, dotted, value, message):
    path = params_with(tmp_path, "prepare", dotted, value)
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_section(PrepareParams, "prepare", path)


def test_bad_sha256_pin_is_rejected(tmp_path):
    path = params_with(tmp_path, "data", "gutenberg.sha256", {503: "abc"})
    with pytest.raises(ParamsError, match=r"data\.gutenberg\.sha256: Value error, book 503"):
        load_section(DataParams, "data", path)


def test_stage_rejects_invalid_params_before_any_work(tmp_path):
    path = params_with(tmp_path, "prepare", "split.test", -0.1)
    out = tmp_path / "processed"
    result = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "--config", str(path), "--stories", str(REPO / "data/stories"),
         "--books", str(tmp_path / "none"), "--output-dir", str(out), "--metrics", str(tmp_path / "m.json")],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "prepare.split.test: Input should be greater than or equal to 0" in result.stderr
    assert not out.exists() and not (tmp_path / "m.json").exists()


def test_command_line_override_is_validated(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "stages.download", "--output-dir", str(tmp_path / "raw"), "--gutenberg.books", "[0]"],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "data.gutenberg.books.0: Input should be greater than 0" in result.stderr


@pytest.mark.parametrize("stage", ["download", "prepare"])
def test_every_stage_documents_its_options(stage):
    result = subprocess.run([sys.executable, "-m", f"stages.{stage}", "--help"], cwd=REPO, capture_output=True,
                            text=True, check=True)
    assert "--config" in result.stdout and "--output-dir" in result.stdout
    assert "now:" in result.stdout  # current params.yaml values are shown

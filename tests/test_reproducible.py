"""Outputs depend on params and data alone: not on PYTHONHASHSEED, nor on how a stage is started.

`dvc repro` runs each stage as `python -m stages.<name>` with whatever environment the user has: no
Makefile exports anything. So the stages pin the math libraries themselves (aitale/machine.py), and
no set or dict order that Python's hash randomisation moves may reach an output.
"""

import json
import os
import subprocess
import sys

from aitale.machine import NATIVE, PINNED_ENV
from tests.support.params import tiny_params
from tests.support.repo import REPO
from tests.support.stages import train

# Two of the reference books, with enough of what the screen removes that the order of its rules shows.
BOOKS = "[2591, 5314]"


def stage(name: str, *args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"stages.{name}", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_prepare_writes_the_same_bytes_under_any_hash_seed(tmp_path, corpus_dir, screen_dir):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    raw = tmp_path / "raw"
    stage(
        "download", "--output-dir", str(raw), "--gutenberg.books", BOOKS, "--gutenberg.mirror", str(corpus_dir), env=env
    )
    outputs = {}
    for seed in ("1", "2"):
        out = tmp_path / f"processed-{seed}"
        args = [
            "--books",
            str(raw),
            "--screen",
            str(screen_dir),
            "--output-dir",
            str(out),
            "--metrics",
            str(out) + ".json",
        ]
        stage("prepare", *args, env={**env, "PYTHONHASHSEED": seed})
        outputs[seed] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert outputs["1"].keys() == {"train.jsonl", "val.jsonl", "test.jsonl", "holdout.jsonl", "removed.jsonl"}
    removed = [json.loads(line) for line in outputs["1"]["removed.jsonl"].splitlines()]
    assert sum(r["reason"] == "unsafe" for r in removed) > 10  # the rules had words to name
    for name in outputs["1"]:
        assert outputs["1"][name] == outputs["2"][name], f"{name} differs between PYTHONHASHSEED=1 and 2"


def test_a_stage_that_dvc_starts_pins_its_math_itself(dvc_project):
    """The tiny project was reproduced by a plain `dvc repro`, as a user starts it."""
    trained = json.loads((dvc_project / "metrics/train.json").read_text())
    assert trained["math_path"] == "pinned"
    assert trained["cpu_capability"] == "avx2"
    assert trained["threads"] == 2
    assert trained["precision"] == "fp32"


def capability(code: str, **env: str) -> tuple[str, str]:
    # none of the variables a stage sets, as in a fresh shell (a stage imported by an earlier test sets them here)
    env = {**{k: v for k, v in os.environ.items() if k not in {*PINNED_ENV, NATIVE}}, **env}
    code += "; import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tuple(result.stdout.split())


def test_a_stage_holds_torch_to_avx2_and_two_threads_unless_native_math_is_asked_for():
    assert capability("import stages") == ("AVX2", "2")
    # AITALE_NATIVE_MATH=1: what torch picks on its own on this CPU (AVX512 where it has it)
    assert capability("import stages", AITALE_NATIVE_MATH="1") == capability("pass")


def test_two_trainings_publish_the_same_bytes_checkpoints_included(tmp_path, tiny_data):
    """A checkpoint holds what params and data decide; the loop's wall time stays out of it."""
    published = {}
    for run in ("first", "second"):
        root = tmp_path / run
        root.mkdir()
        config = tiny_params(root / "params.yaml")
        result = train(root, tiny_data, config)
        assert result.returncode == 0, result.stderr
        published[run] = {
            str(p.relative_to(root)): p.read_bytes()
            for folder in ("weights", "checkpoints")
            for p in sorted((root / folder).rglob("*"))
            if p.is_file()
        }
    assert any(name.endswith("last.pt") for name in published["first"])
    assert published["first"].keys() == published["second"].keys()
    assert [n for n in published["first"] if published["first"][n] != published["second"][n]] == []

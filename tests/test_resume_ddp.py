"""The train stage as it really runs: killed with SIGKILL and resumed, and data-parallel under torchrun.

Real processes throughout: ``python -m stages.train`` and ``torchrun -m stages.train`` on CPU (gloo).
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, pipeline

from aitale.data.structure import prompt
from aitale.modeling.blocks import load_blocks
from tests.conftest import REPO, clone_project, sh, tiny_params

STEPS = 30
KILL_AFTER = 5  # kill once a checkpoint at this step or later is on disk
RESUME = {"train": {"eval_every": 5, "checkpoint_every": 5, "sample_every": 100, "patience": 0,
                    "scratch": {"max_steps": STEPS}}}

DDP_STEPS = 20
DDP = {"train": {"eval_every": 10, "checkpoint_every": 10, "patience": 0,
                 "scratch": {"max_steps": DDP_STEPS, "learning_rate": 5.0e-3}}}

# Records, per process, every rename onto the watched path: write_json writes aside and renames
# into place, so one rename is one write. An audit hook only observes; the stage runs unchanged.
RENAME_WATCH = '''
import os, sys

_watched = os.environ.get("AITALE_TEST_WATCH")
_log = os.environ.get("AITALE_TEST_RENAMES")

def _hook(event, args):
    if event == "os.rename" and _watched and os.path.abspath(os.fspath(args[1])) == _watched:
        with open(_log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.environ.get('RANK', '-')}\\n")

if _watched and _log:
    sys.addaudithook(_hook)
'''


def stage_args(root: Path, data: Path, config: Path) -> list[str]:
    return [
        "--tokenizer", str(data / "tokenizer"),
        "--train", str(data / "processed/train.jsonl"), "--val", str(data / "processed/val.jsonl"),
        "--output-dir", str(root / "weights"), "--checkpoints", str(root / "checkpoints"),
        "--live", str(root / "live"), "--speed", str(root / "speed"), "--metrics", str(root / "metrics.json"),
        "--config", str(config),
    ]


def environment(**extra: str) -> dict[str, str]:
    # On CPU (gloo), one thread per process: the runs here share two cores, and the tiny model gains
    # nothing from more. Bitwise-equal weights after a resume are only promised on the CPU.
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **extra}


def start_train(root: Path, data: Path, config: Path, name: str) -> "subprocess.Popen[bytes]":
    """``python -m stages.train`` in the background, its output in ``root/<name>.log`` (no pipe to fill)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "stages.train", *stage_args(root, data, config)],
                                cwd=REPO, env=environment(), stdout=log, stderr=subprocess.STDOUT)


def checkpoint_step(path: Path) -> int:
    """The step of the resumable checkpoint at ``path``, -1 while there is none."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["state"]["step"]
    except FileNotFoundError:
        return -1


def val_loss(model, blocks, batch_size: int = 16) -> float:
    """Mean next-token loss over every validation block, in fp32."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for chunk in blocks.ids.split(batch_size):
            total += model(input_ids=chunk, labels=chunk).loss.item() * len(chunk)
    return total / len(blocks)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, tiny_data):
    """A run killed with SIGKILL after its checkpoint at step 5 or later, and an uninterrupted one beside it.

    Returns the params, the killed run's folder, a copy of it as the kill left it, the step of its
    last checkpoint, and the finished uninterrupted run's folder.
    """
    root = tmp_path_factory.mktemp("interrupted")
    config = tiny_params(root / "params.yaml", **RESUME)
    killed, straight = root / "killed", root / "straight"
    # The uninterrupted reference runs beside the one that is killed: they share nothing but the inputs.
    reference = start_train(straight, tiny_data, config, "run")
    victim = start_train(killed, tiny_data, config, "first")
    try:
        last = killed / "checkpoints.partial/last.pt"  # where an unfinished run keeps it
        deadline = time.monotonic() + 180
        while checkpoint_step(last) < KILL_AFTER:
            assert victim.poll() is None, (killed / "first.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL, "the run ended before it could be killed"
        shutil.copytree(killed, root / "as-killed")
        assert reference.wait(timeout=300) == 0, (straight / "run.log").read_text(errors="replace")[-3000:]
    finally:
        for process in (victim, reference):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert "resumed from the checkpoint" not in (straight / "run.log").read_text(errors="replace")
    return config, killed, root / "as-killed", checkpoint_step(last), straight


def rerun(config: Path, data: Path, folder: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "stages.train", *stage_args(folder, data, config)],
                          cwd=REPO, env=environment(), capture_output=True, text=True, timeout=300)


def assert_same_result(folder: Path, reference: Path) -> None:
    weights = load_file(folder / "weights/model.safetensors")
    expected = load_file(reference / "weights/model.safetensors")
    assert weights.keys() == expected.keys() and weights
    different = [name for name in expected if not torch.equal(weights[name], expected[name])]
    assert not different, f"tensors differ after resuming: {different}"
    metrics = json.loads((folder / "metrics.json").read_text())
    reference_metrics = json.loads((reference / "metrics.json").read_text())
    assert metrics["steps"] == STEPS
    assert metrics["val_loss"] == reference_metrics["val_loss"]
    assert metrics == reference_metrics  # train loss, tokens seen, best step: all of it


def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(interrupted, tiny_data):
    config, killed, _, killed_at, straight = interrupted
    assert KILL_AFTER <= killed_at < STEPS and killed_at % 5 == 0
    assert not (killed / "weights/model.safetensors").exists()
    assert not (killed / "weights").exists() and not (killed / "metrics.json").exists()

    result = rerun(config, tiny_data, killed)  # the very same command
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from the checkpoint at step {killed_at} of {STEPS}" in result.stderr
    assert checkpoint_step(killed / "checkpoints/last.pt") == STEPS  # published where dvc.yaml declares it
    assert not (killed / "checkpoints.partial").exists()
    assert_same_result(killed, straight)


def test_resume_survives_a_kill_during_the_tracker_summary_write(interrupted, tiny_data, tmp_path):
    # The state a kill leaves when it lands between DVCLive truncating its summary and rewriting it.
    # The kill in `interrupted` often lands there for real (it fires just after a checkpoint, about
    # when the next step logs); here it is made certain.
    config, _, as_killed, killed_at, straight = interrupted
    folder = tmp_path / "torn"
    shutil.copytree(as_killed, folder)
    (folder / "checkpoints.partial/live/metrics.json").write_text("")
    result = rerun(config, tiny_data, folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from the checkpoint at step {killed_at} of {STEPS}" in result.stderr
    assert_same_result(folder, straight)


def test_a_killed_dvc_repro_resumes_from_its_last_checkpoint(dvc_project, tmp_path):
    repo = clone_project(dvc_project, tmp_path / "ai-tale")
    tiny_params(repo / "params.yaml", **RESUME)
    env = {**environment(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(["dvc", "repro", "train"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # its own process group: the kill takes the stage too
    try:
        deadline = time.monotonic() + 180
        while checkpoint_step(repo / "models/checkpoints/storyteller.partial/last.pt") < KILL_AFTER:
            assert first.poll() is None, (tmp_path / "first.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert not (repo / "models/weights/storyteller").exists()  # DVC removed the old output; nothing half-written
    output = sh("dvc", "repro", "train", cwd=repo)
    assert "resumed from the checkpoint at step" in output
    assert checkpoint_step(repo / "models/checkpoints/storyteller/last.pt") == STEPS
    assert "up to date" in sh("dvc", "status", "train", cwd=repo)


def test_torchrun_two_processes_train_one_model(tmp_path, tiny_data):
    config = tiny_params(tmp_path / "params.yaml", **DDP)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(RENAME_WATCH)
    renames = tmp_path / "metrics-writes.log"
    root = tmp_path / "run"
    metrics_path = root / "metrics.json"
    env = environment(
        PYTHONPATH=os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")])),
        AITALE_TEST_WATCH=os.path.abspath(metrics_path), AITALE_TEST_RENAMES=str(renames),
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "stages.train",
         *stage_args(root, tiny_data, config)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    # Both processes trained, each on its half of every batch.
    assert result.stderr.count(f"training {DDP_STEPS} steps:") == 2
    assert result.stderr.count("16 per step on 2 process(es)") == 2

    # The metrics file is written once, by rank 0 only.
    assert renames.read_text().splitlines() == ["0"]
    metrics = json.loads(metrics_path.read_text())
    tokenizer = AutoTokenizer.from_pretrained(root / "weights")
    vocab = len(tokenizer)
    assert metrics["steps"] == metrics["planned_steps"] == DDP_STEPS > 0
    assert metrics["tokens_seen"] == DDP_STEPS * 2 * 8 * 64  # both processes' blocks counted
    assert metrics["stopped_early"] is False and metrics["best_step"] in (10, 20)
    assert 0 < metrics["val_loss"] < math.log(vocab)
    assert metrics["val_perplexity"] == pytest.approx(math.exp(metrics["val_loss"]), rel=1e-3)
    assert 0 < metrics["train_loss"] < math.log(vocab) + 0.5
    assert metrics["train_blocks"] > 0 and metrics["train_stories"] > 0 and metrics["val_stories"] > 0
    assert metrics["parameters"] > 0 and metrics["block_size"] == 64 and metrics["base"] == "scratch"

    # The saved model is an ordinary transformers model that has learned.
    model = AutoModelForCausalLM.from_pretrained(root / "weights")
    val = load_blocks(tiny_data / "processed/val.jsonl", tokenizer, 64)
    trained = val_loss(model, val)
    torch.manual_seed(0)
    untrained = val_loss(GPT2LMHeadModel(model.config), val)
    assert trained < math.log(vocab) - 0.5
    assert trained < untrained - 0.5
    assert trained == pytest.approx(metrics["val_loss"], abs=0.05)  # the best weights are the ones saved

    generator = pipeline("text-generation", model=str(root / "weights"))
    text = generator(prompt("The Tiny Test"), max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert text.startswith(prompt("The Tiny Test")) and len(text) > len(prompt("The Tiny Test"))

"""The train stage as it really runs: killed with SIGKILL and resumed, and data-parallel under torchrun
(DDP, and FSDP with ``memory.fsdp``).

Real processes throughout: ``python -m stages.train`` and ``torchrun -m stages.train`` on CPU (gloo).
"""

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2LMHeadModel, pipeline

from aitale.data.structure import prompt
from aitale.modeling.blocks import load_blocks
from tests.support.params import tiny_params
from tests.support.projects import clone_project
from tests.support.repo import REPO
from tests.support.shell import sh

STEPS = 30
KILL_AFTER = 5  # kill once a checkpoint at this step or later is on disk
RESUME = {
    "train": {
        "eval_every": 5,
        "checkpoint_every": 5,
        "sample_every": 100,
        "patience": 0,
        "scratch": {"max_steps": STEPS},
    }
}

DDP_STEPS = 20
DDP = {
    "train": {
        "eval_every": 10,
        "checkpoint_every": 10,
        "patience": 0,
        "scratch": {"max_steps": DDP_STEPS, "learning_rate": 5.0e-3},
    }
}

# Records, per process, every rename onto the watched path: write_json writes aside and renames
# into place, so one rename is one write. An audit hook only observes; the stage runs unchanged.
RENAME_WATCH = """
import os, sys

_watched = os.environ.get("AITALE_TEST_WATCH")
_log = os.environ.get("AITALE_TEST_RENAMES")

def _hook(event, args):
    if event == "os.rename" and _watched and os.path.abspath(os.fspath(args[1])) == _watched:
        with open(_log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.environ.get('RANK', '-')}\\n")

if _watched and _log:
    sys.addaudithook(_hook)
"""


def stage_args(root: Path, data: Path, config: Path) -> list[str]:
    return [
        "--tokenizer",
        str(data / "tokenizer"),
        "--train",
        str(data / "processed/train.jsonl"),
        "--val",
        str(data / "processed/val.jsonl"),
        "--output-dir",
        str(root / "weights"),
        "--checkpoints",
        str(root / "checkpoints"),
        "--live",
        str(root / "live"),
        "--speed",
        str(root / "speed"),
        "--metrics",
        str(root / "metrics.json"),
        "--config",
        str(config),
    ]


def environment(**extra: str) -> dict[str, str]:
    # On CPU (gloo), one thread per process: the runs here share two cores, and the tiny model gains
    # nothing from more. Bitwise-equal weights after a resume are only promised on the CPU.
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **extra}


def start_train(root: Path, data: Path, config: Path, name: str) -> "subprocess.Popen[bytes]":
    """``python -m stages.train`` in the background, its output in ``root/<name>.log`` (no pipe to fill)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stages.train", *stage_args(root, data, config)],
            cwd=REPO,
            env=environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def checkpoint_step(path: Path) -> int:
    """The step of the resumable checkpoint at ``path``, -1 while there is none."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)["state"]["step"]
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
    return subprocess.run(
        [sys.executable, "-m", "stages.train", *stage_args(folder, data, config)],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


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
        first = subprocess.Popen(
            ["dvc", "repro", "train"], cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own process group: the kill takes the stage too
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
        AITALE_TEST_WATCH=os.path.abspath(metrics_path),
        AITALE_TEST_RENAMES=str(renames),
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "stages.train",
            *stage_args(root, tiny_data, config),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
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


class RunsCode:
    """A pickle that calls a function when it is loaded, as a tampered checkpoint on the DVC remote would."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, tiny_data):
    config = tiny_params(tmp_path / "params.yaml", **RESUME)
    marker = tmp_path / "pwned"
    partial = tmp_path / "checkpoints.partial"
    partial.mkdir()
    torch.save({"fingerprint": "anything", "state": RunsCode(marker)}, partial / "last.pt")
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", *stage_args(tmp_path, tiny_data, config)],
        cwd=REPO,
        env=environment(),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "refused to load: it calls posix.system, and unpickling it could run code" in result.stderr
    assert not marker.exists() and not (tmp_path / "weights").exists()


# FSDP: 2 processes x 2 blocks x 2 micro-batches against 1 process x 4 blocks x 2 micro-batches, the same
# 8 blocks a step; no dropout, whose masks would differ between the two, and fp32: bf16 autocast rounds
# sums of 2 rows otherwise than sums of 4. Gradient checkpointing rides along.
FSDP_STEPS = 15
SAME_BATCH = {
    "model": {"dropout": 0.0, "attn_dropout": 0.0},
    "train": {
        "precision": "fp32",
        "eval_every": 5,
        "checkpoint_every": 5,
        "sample_every": 5,
        "patience": 0,
        "scratch": {"max_steps": FSDP_STEPS, "learning_rate": 5.0e-3, "batch_size": 4, "grad_accum": 2},
    },
}
SHARDED = {
    **SAME_BATCH,
    "train": {**SAME_BATCH["train"], "scratch": {**SAME_BATCH["train"]["scratch"], "batch_size": 2}},
    "memory": {"fsdp": True, "gradient_checkpointing": True},
}


def torchrun_train(root: Path, data: Path, config: Path, name: str) -> "subprocess.Popen[bytes]":
    """``torchrun --nproc-per-node 2 -m stages.train`` in the background."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc-per-node", "2"]
            + ["-m", "stages.train", *stage_args(root, data, config)],
            cwd=REPO,
            env=environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def kill_run(torchrun: "subprocess.Popen[bytes]") -> None:
    """SIGKILL to torchrun and its workers at once (each worker is in a session of its own)."""
    for process in [*psutil.Process(torchrun.pid).children(recursive=True), psutil.Process(torchrun.pid)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    torchrun.wait(timeout=30)


def finished(process: "subprocess.Popen[bytes]", log: Path) -> str:
    try:
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            kill_run(process)
    text = log.read_text(errors="replace")
    assert code == 0, text[-5000:]
    return text


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory, tiny_data):
    """One process, FSDP uninterrupted, and FSDP killed after a checkpoint then resumed: their folders."""
    root = tmp_path_factory.mktemp("fsdp")
    single, sharded, killed = root / "single", root / "sharded", root / "killed"
    reference = start_train(single, tiny_data, tiny_params(root / "single.yaml", **SAME_BATCH), "run")
    config = tiny_params(root / "sharded.yaml", **SHARDED)
    straight = torchrun_train(sharded, tiny_data, config, "run")
    finished(reference, single / "run.log")
    victim = torchrun_train(killed, tiny_data, config, "first")
    try:
        last = killed / "checkpoints.partial/last.pt"
        deadline = time.monotonic() + 180
        while checkpoint_step(last) < 5:
            assert victim.poll() is None, (killed / "first.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.02)
        kill_run(victim)
    finally:
        if victim.poll() is None:
            kill_run(victim)
    killed_at = checkpoint_step(last)
    assert not (killed / "weights").exists() and not (killed / "checkpoints").exists()  # it did not finish
    finished(straight, sharded / "run.log")
    resumed = finished(torchrun_train(killed, tiny_data, config, "second"), killed / "second.log")
    return single, sharded, killed, killed_at, resumed


def test_fsdp_trains_the_model_one_process_would(fsdp_runs):
    single, sharded, *_ = fsdp_runs
    log = (sharded / "run.log").read_text(errors="replace")
    assert log.count("FSDP over 2 processes: 1 blocks and the root sharded") == 2
    assert log.count("8 per step on 2 process(es)") == 2
    metrics = json.loads((sharded / "metrics.json").read_text())
    reference = json.loads((single / "metrics.json").read_text())
    assert metrics["steps"] == reference["steps"] == FSDP_STEPS
    assert metrics["tokens_seen"] == reference["tokens_seen"] and metrics["parameters"] == reference["parameters"]
    assert metrics["val_loss"] == pytest.approx(reference["val_loss"], abs=1e-4)

    # The saved model is an ordinary, complete transformers model, and the one a single process trains.
    model = AutoModelForCausalLM.from_pretrained(sharded / "weights")
    expected = AutoModelForCausalLM.from_pretrained(single / "weights")
    assert model.transformer.wte.weight.shape == expected.transformer.wte.weight.shape
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # still tied
    weights, expected_weights = model.state_dict(), expected.state_dict()
    assert weights.keys() == expected_weights.keys()
    gap = max((weights[k] - expected_weights[k]).abs().max().item() for k in weights)
    # not bitwise: the gradients are summed in another order (8e-6 at most here; weights move by up to 0.07)
    assert gap < 5e-5, f"largest weight difference {gap}"
    start = GPT2LMHeadModel(model.config).state_dict()
    moved = max((expected_weights[k] - start[k]).abs().max().item() for k in weights if "bias" not in k)
    assert moved > 1e3 * gap  # training moved the weights far more than the two runs differ
    samples = sorted((sharded / "live/samples").glob("step-*.md"))  # sampled on the shards, by every process
    assert [p.name for p in samples] == [f"step-{s:06d}.md" for s in (5, 10, 15)]


def test_fsdp_checkpoints_are_the_files_one_process_writes(fsdp_runs):
    single, sharded, *_ = fsdp_runs
    for name in ("last.pt", "best.pt"):
        saved = torch.load(sharded / "checkpoints" / name, map_location="cpu", weights_only=True)
        expected = torch.load(single / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert {k: v.shape for k, v in saved["model"].items()} == {k: v.shape for k, v in expected["model"].items()}
        assert not any(type(v) is not torch.Tensor for v in saved["model"].values())  # no DTensor shards
    last = torch.load(sharded / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    expected = torch.load(single / "checkpoints/last.pt", map_location="cpu", weights_only=True)
    assert last["state"]["step"] == FSDP_STEPS and last["scheduler"] == expected["scheduler"]
    optimizer, reference = last["optimizer"], expected["optimizer"]
    assert [g["params"] for g in optimizer["param_groups"]] == [g["params"] for g in reference["param_groups"]]
    assert optimizer["state"].keys() == reference["state"].keys()
    for i, moments in reference["state"].items():
        for key, value in moments.items():
            torch.testing.assert_close(optimizer["state"][i][key], value, atol=1e-5, rtol=1e-3)

    # The best checkpoint is what was saved (the last eval was the best), and loads into a plain model.
    model = AutoModelForCausalLM.from_pretrained(sharded / "weights")
    best = torch.load(sharded / "checkpoints/best.pt", map_location="cpu", weights_only=True)["model"]
    plain = GPT2LMHeadModel(model.config)
    plain.load_state_dict(best, strict=True)
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in model.state_dict().items())


def test_a_killed_fsdp_run_resumes_to_the_same_weights(fsdp_runs):
    _, sharded, killed, killed_at, resumed = fsdp_runs
    assert 5 <= killed_at < FSDP_STEPS and killed_at % 5 == 0
    assert resumed.count(f"resumed from the checkpoint at step {killed_at} of {FSDP_STEPS}") == 2
    weights = load_file(killed / "weights/model.safetensors")
    expected = load_file(sharded / "weights/model.safetensors")
    assert weights.keys() == expected.keys()
    assert [k for k in expected if not torch.equal(weights[k], expected[k])] == []
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics == json.loads((sharded / "metrics.json").read_text())

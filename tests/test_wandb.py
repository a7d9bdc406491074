"""Weights & Biases beside DVCLive, switched on from the environment: real `wandb` in offline mode (the only mode
these machines can test), its runs read back from the files a later `wandb sync` would upload."""

import json
import os
from pathlib import Path

import pytest
import yaml
from wandb.proto import wandb_internal_pb2
from wandb.sdk.internal.datastore import DataStore

from aitale.generation.config import default_settings
from aitale.io import read_jsonl, write_jsonl
from aitale.modeling.tracking import steps_tsv
from tests.support.params import tiny_params
from tests.support.projects import clone_project, ran
from tests.support.repo import REPO
from tests.support.shell import sh
from tests.support.stages import run_stage, train
from tests.test_distill import STUDENT, TRAIN_STORIES, one_thread, stage_args
from tests.test_evaluate import evaluate
from tests.test_pipeline import lock_hashes


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """No W&B variable or key from the machine running the tests; W&B's own settings and caches in ``tmp_path``."""
    for name in [name for name in os.environ if name.startswith(("WANDB_", "AITALE_WANDB"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # where `wandb login` keeps the key
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name))
    return monkeypatch


def offline_runs(folder: Path) -> dict[str, dict]:
    """The offline runs under ``folder/wandb``, by name: group, job type, config, history rows, summary and folder,
    read from each run's record file with wandb's own reader (the one `wandb sync` uploads from)."""
    runs = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"dir": path.parent, "config": {}, "history": [], "summary": {}}
        store = DataStore()
        store.open_for_scan(str(path))
        while (data := store.scan_data()) is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(name=record.run.display_name, group=record.run.run_group, job_type=record.run.job_type)
                _apply(run["config"], record.run.config.update)
            elif kind == "config":
                _apply(run["config"], record.config.update)
            elif kind == "history":
                run["history"].append(_apply({}, record.history.item))
            elif kind == "summary":
                _apply(run["summary"], record.summary.update)
        runs[run["name"]] = run
    return runs


def _apply(target: dict, items) -> dict:
    for item in items:
        *parents, last = list(item.nested_key) or [item.key]
        place = target
        for part in parents:
            place = place.setdefault(part, {})
        place[last] = json.loads(item.value_json)
    return target


def short_sha(repo: Path) -> str:
    return sh("git", "rev-parse", "--short", "HEAD", cwd=repo).strip()


def test_training_with_wandb_offline_logs_what_dvclive_gets(tmp_path, tiny_data, scratch_run, wandb_env):
    wandb_env.setenv("WANDB_MODE", "offline")
    wandb_env.setenv("WANDB_DIR", str(tmp_path / "wb"))
    config = tiny_params(tmp_path / "params.yaml")
    result = train(tmp_path, tiny_data, config)
    assert result.returncode == 0, result.stderr
    assert "wandb sync" in result.stdout + result.stderr  # W&B's own word on how to upload it

    [(name, run)] = offline_runs(tmp_path / "wb").items()
    assert name == run["job_type"] == "train" and run["group"] == short_sha(REPO)
    steps = [row for row in run["history"] if "train/loss" in row]
    live = tmp_path / "live/plots/metrics"
    assert {row["_step"]: row["train/loss"] for row in steps} == steps_tsv((live / "train/loss.tsv").read_text())
    assert {row["_step"]: row["val/loss"] for row in run["history"] if "val/loss" in row} == steps_tsv(
        (live / "val/loss.tsv").read_text()
    )
    assert all({"train/lr", "speed/tokens_per_second", "speed/memory_mb"} <= set(row) for row in steps)
    metrics = json.loads((tmp_path / "metrics/train.json").read_text())
    assert {key: run["summary"][key] for key in metrics} == metrics  # val loss, bits per byte and the rest
    params = yaml.safe_load(config.read_text())["train"]
    assert run["config"]["learning_rate"] == params["scratch"]["learning_rate"]  # the hyperparams DVCLive gets
    assert run["config"]["block_size"] == 64 and run["config"]["train"]["seed"] == params["seed"]
    assert run["config"]["base"] == "scratch" and run["config"]["n_layer"] == 1  # the model's params

    tables = sorted(run["dir"].glob("files/media/table/samples_*.table.json"))
    assert [path.name.split("_")[1] for path in tables] == ["4", "6"]  # train.sample_every 4, and the last step
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["step", "title", "story"]
    [[step, title, story]] = table["data"]
    assert (step, title) == (6, "The Tiny Test") and story in (tmp_path / "live/samples/step-000006.md").read_text()
    # W&B wrote nothing the stage's outputs hold: the same weights as the scratch run made without it
    scratch = scratch_run[0] / "weights/storyteller/model.safetensors"
    assert (tmp_path / "weights/storyteller/model.safetensors").read_bytes() == scratch.read_bytes()


def test_wandb_on_without_a_key_says_how_to_enable_it_and_trains_on(tmp_path, tiny_data, wandb_env):
    wandb_env.setenv("AITALE_WANDB", "1")
    wandb_env.setenv("WANDB_DIR", str(tmp_path / "wb"))
    config = tiny_params(tmp_path / "params.yaml", train={"scratch": {"max_steps": 2}})
    result = train(tmp_path, tiny_data, config)
    assert result.returncode == 0, result.stderr
    assert "W&B tracking is on (AITALE_WANDB=1) but no W&B key was found: `wandb login` or WANDB_API_KEY" in (
        result.stderr
    )
    assert "WANDB_MODE=offline writes them under wandb/ for a later `wandb sync`" in result.stderr
    assert json.loads((tmp_path / "metrics/train.json").read_text())["steps"] == 2
    assert not (tmp_path / "wb").exists()


def test_dvc_lock_is_the_same_with_wandb_on_and_runs_are_grouped_by_commit_and_experiment(
    dvc_project, tmp_path, wandb_env
):
    root = clone_project(dvc_project, tmp_path / "ai-tale")
    before = lock_hashes(root)  # dvc repro with W&B off
    wandb_env.setenv("WANDB_MODE", "offline")
    output = sh("dvc", "exp", "run", "--force", "--single-item", "--name", "wandb-on", "train", cwd=root)
    assert ran(output) == {"train"}
    after = lock_hashes(root)
    # last.pt records the loop's wall time (State.seconds), which differs from run to run, W&B on or off
    assert {path for path in before if after[path] != before[path]} <= {"models/checkpoints/storyteller"}
    assert "wandb" not in sh("git", "status", "--porcelain", cwd=root)  # nor does git see it

    [(name, run)] = offline_runs(root).items()  # in the project's root: no WANDB_DIR
    assert name == "train" and run["group"] == f"{short_sha(root)}-wandb-on"


def test_evaluate_sends_its_metrics_and_sample_stories(scratch_run, tiny_data, screen_dir, tmp_path, wandb_env):
    wandb_env.setenv("WANDB_MODE", "offline")
    wandb_env.setenv("WANDB_DIR", str(tmp_path / "wb"))
    result = evaluate(scratch_run[0], tiny_data, screen_dir, tiny_params(tmp_path / "params.yaml"), tmp_path / "out")
    assert result.returncode == 0, result.stderr

    [(name, run)] = offline_runs(tmp_path / "wb").items()
    assert name == run["job_type"] == "evaluate"
    metrics, speed = (json.loads((tmp_path / "out" / file).read_text()) for file in ("eval.json", "speed.json"))
    assert {key: run["summary"][key] for key in metrics} == metrics and run["summary"]["speed"] == speed
    shipped = default_settings(scratch_run[0] / "weights/storyteller")  # evaluate samples as the model ships
    assert run["config"]["generate"]["max_new_tokens"] == shipped.max_new_tokens
    assert run["config"]["generate"]["temperature"] == shipped.temperature
    assert run["config"]["evaluate"]["samples_per_prompt"] == 1
    [table] = run["dir"].glob("files/media/table/samples_*.table.json")
    rows = json.loads(table.read_text())
    assert rows["columns"][:2] == ["title", "story"] and "coherence" in rows["columns"]
    [[title, story, *_]] = rows["data"]
    assert title == "The Tiny Test" and story in (tmp_path / "out/samples.md").read_text()


def test_distill_sends_its_step_losses_scores_and_speed(scratch_run, tiny_data, tmp_path, wandb_env):
    wandb_env.setenv("WANDB_MODE", "offline")
    wandb_env.setenv("WANDB_DIR", str(tmp_path / "wb"))
    for split in ("train", "val", "test"):  # test_distill's short run: the first stories of the train split
        records = read_jsonl(tiny_data / f"processed/{split}.jsonl")
        write_jsonl(tmp_path / f"{split}.jsonl", records[:TRAIN_STORIES] if split == "train" else records)
    args = stage_args(tmp_path, tmp_path, scratch_run[0] / "weights/storyteller")
    with one_thread():
        result = run_stage("distill", *args, config=tiny_params(tmp_path / "params.yaml", distill=STUDENT))
    assert result.returncode == 0, result.stderr

    [(name, run)] = offline_runs(tmp_path / "wb").items()
    assert name == run["job_type"] == "distill" and run["config"]["distill"]["n_embd"] == 16
    metrics = json.loads((tmp_path / "metrics/distill.json").read_text())
    assert {key: run["summary"][key] for key in metrics} == metrics  # student and teacher: val loss, bits per byte
    steps = [row for row in run["history"] if "train/loss" in row]
    assert [row["_step"] for row in steps] == list(range(1, metrics["distill"]["steps"] + 1))
    assert all(
        {"train/kl", "train/ce", "train/lr", "speed/tokens_per_second", "speed/memory_mb"} <= set(row) for row in steps
    )
    assert run["summary"]["generation_speed"]["threads_1"]["student"]["tokens_per_second"] > 0

"""dvc.yaml's promise, checked: each stage lists exactly the code it runs and the params keys it reads.

A stage that runs a module it does not list is silently stale when that module changes; a stage that
lists what it never runs or reads reruns for nothing. Both directions fail here, for every stage,
including stages added later. The code deps are written by ``python -m tests.dvc_deps --write`` (``make deps``).
"""

import argparse
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.dependency.param import ParamsDependency
from dvc.repo import Repo

from tests.dvc_deps import import_closure, render
from tests.support.params import recording_params_reads, set_param, tiny_params
from tests.support.projects import clone_project
from tests.support.repo import REPO
from tests.support.shell import sh

CODE = ("aitale/", "stages/")
VALIDATES_EVERYTHING = "check"  # reads no key one by one: it validates the whole file
# Keys a stage reads only when its input calls for them, which the tiny project's run does not do.
READ_WHEN_NEEDED = {
    "download": {"data.gutenberg.mirror", "data.gutenberg.sha256", "data.gutenberg.timeout_s"},  # books to fetch
    "prepare": {"prepare.dedupe.near_duplicate_same_title"},  # two books' stories with the same title
    "classify": {"classify.fine_tune_learning_rate", "classify.fine_tune_batch_size"},  # fine_tune_epochs > 0
}


def stages_of(root: Path) -> dict[str, object]:
    """DVC's own reading of dvc.yaml (foreach expanded, ${} resolved), by stage name."""
    with Repo(str(root)) as repo:
        return {stage.name: stage for stage in repo.index.stages}


def stage_module(stage) -> str:
    match = re.search(r"python -m (stages\.\w+)", stage.cmd)
    assert match, f"{stage.addressing}: its command is not `python -m stages.<name>`"
    return match.group(1)


def declared_params(stage) -> list[str]:
    return [key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params]


def leaf_keys(params: dict, prefix: str = "") -> list[str]:
    keys = []
    for name, value in params.items():
        key = f"{prefix}{name}"
        keys += leaf_keys(value, f"{key}.") if isinstance(value, dict) and value else [key]
    return keys


@pytest.mark.parametrize("name", sorted(stages_of(REPO)))
def test_every_stage_lists_exactly_the_code_it_runs(name):
    stage = stages_of(REPO)[name]
    listed = {str(dep.def_path) for dep in stage.deps if str(dep.def_path).startswith(CODE)}
    runs = import_closure(stage_module(stage))
    assert listed == runs, (
        f"{name}: dvc.yaml lists code it does not run: {sorted(listed - runs)}; and misses code it runs: "
        f"{sorted(runs - listed)}: run `python -m tests.dvc_deps --write`"
    )


def test_dvc_yaml_holds_the_code_deps_the_generator_writes():
    text = (REPO / "dvc.yaml").read_text()
    assert render(text) == text, "dvc.yaml's code deps are out of date: run `python -m tests.dvc_deps --write`"


def test_the_generator_puts_back_code_a_stage_runs_and_drops_code_it_does_not():
    text = (REPO / "dvc.yaml").read_text()
    train = text.index("\n  train:")
    stale = text[:train] + text[train:].replace("      - aitale/modeling/trainer.py\n", "", 1)
    stale = stale.replace("      - stages/check.py\n", "      - stages/check.py\n      - aitale/serve/app.py\n", 1)
    assert stale != text
    assert render(stale) == text


class Parsed(Exception):
    """Raised in place of parsing: carries a stage's parser out of its ``main``."""


def stage_parser(module: str, monkeypatch) -> argparse.ArgumentParser:
    def capture(parser, args=None, namespace=None):
        raise Parsed(parser)

    with monkeypatch.context() as patch:
        patch.setattr(argparse.ArgumentParser, "parse_args", capture)
        with pytest.raises(Parsed) as caught:
            importlib.import_module(module).main([])
    return caught.value.args[0]


@pytest.mark.parametrize("name", sorted(stages_of(REPO)))
def test_a_stage_run_by_hand_defaults_to_the_paths_dvc_yaml_gives_it(name, monkeypatch):
    """stages/prepare.py and stages/train.py default to their dvc.yaml paths, so that a run by hand reads and
    writes the pipeline's files: a path changed in dvc.yaml must change there too."""
    stage = stages_of(REPO)[name]
    parser = stage_parser(stage_module(stage), monkeypatch)
    argv = shlex.split(stage.cmd)[3:]
    given = vars(parser.parse_args(argv))
    for action in parser._actions:
        if action.default not in (None, argparse.SUPPRESS) and set(action.option_strings) & set(argv):
            assert given[action.dest] == action.default, (
                f"{name}: {action.option_strings[0]} defaults to {action.default!r}; dvc.yaml passes "
                f"{given[action.dest]!r}"
            )


def test_dvc_lock_holds_exactly_the_stages_dvc_yaml_defines():
    locked = set(yaml.safe_load((REPO / "dvc.lock").read_text())["stages"])
    assert locked == set(stages_of(REPO))


def covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


def test_every_stage_declares_exactly_the_params_it_reads(dvc_project, params_reads):
    """Each stage of the tiny project's `dvc repro` recorded the keys it read (tests/params_reads); dvc.yaml
    must declare each of them, and declare nothing that the stage did not read."""
    params = yaml.safe_load((dvc_project / "params.yaml").read_text())
    stages = stages_of(dvc_project)
    runs = {}
    for record in params_reads:
        argv = " ".join(record["argv"][1:])
        if record["argv"][0].endswith(f"stages/{VALIDATES_EVERYTHING}.py"):
            continue
        names = [name for name, stage in stages.items() if stage.cmd.split(" ", 3)[-1] == argv]
        assert len(names) == 1, f"no single stage ran {record['argv']}"
        runs[names[0]] = set(record["reads"])
    assert set(runs) == set(stages) - {VALIDATES_EVERYTHING}
    for name, reads in sorted(runs.items()):
        declared = declared_params(stages[name])
        undeclared = sorted(key for key in reads if not covered(key, declared))
        unread = sorted(key for key in leaf_keys(params) if covered(key, declared) and not covered(key, sorted(reads)))
        assert undeclared == [], f"{name} reads params that dvc.yaml does not list: it would go stale"
        assert set(unread) == READ_WHEN_NEEDED.get(name, set()), f"dvc.yaml lists params {name} never reads"


READS = """
from aitale.params import SpecialiseParams, TrainParams, load_section
train = load_section(TrainParams, "train", PATH)
train.eval_every, train.scratch.learning_rate
train.scratch.model_copy(update={"epochs": 1}).batch_size
load_section(SpecialiseParams, "specialise", PATH).chain["age-3-5"].slice
"""


def test_the_recorder_notes_each_key_read_and_nothing_else(tmp_path):
    """What the params test above relies on: a process's record holds the leaf keys it read, through sub-sections,
    copies and dumps, and not the sections it only passed through. The product records nothing by itself: without
    the recorder on PYTHONPATH, the same variable writes no file."""
    script = READS.replace("PATH", repr(str(tiny_params(tmp_path / "params.yaml"))))
    for env in [{"AITALE_PARAMS_READS": str(tmp_path / "off")}, recording_params_reads(tmp_path / "on")]:
        subprocess.run([sys.executable, "-c", script], cwd=REPO, env={**os.environ, **env}, check=True)
    assert not (tmp_path / "off").exists()
    [record] = [json.loads(path.read_text()) for path in (tmp_path / "on").glob("*.json")]
    assert record["reads"] == [
        "specialise.chain.age-3-5.age_group",
        "specialise.chain.age-3-5.style",
        "specialise.chain.age-3-5.theme",
        "train.eval_every",
        "train.scratch.batch_size",
        "train.scratch.learning_rate",
    ]


def unread_keys(root: Path) -> list[str]:
    stages = stages_of(root)
    declared = [key for name, stage in stages.items() if name != VALIDATES_EVERYTHING for key in declared_params(stage)]
    params = yaml.safe_load((root / "params.yaml").read_text())
    return [key for key in leaf_keys(params) if not covered(key, declared)]


def test_an_unread_key_reruns_nothing_but_the_check(dvc_project, tmp_path):
    repo = clone_project(dvc_project, tmp_path / "ai-tale")
    keys = unread_keys(repo)
    assert {"train.pretrained.learning_rate", "human_eval.seed"} <= set(keys)
    for key in keys:
        value = yaml.safe_load((repo / "params.yaml").read_text())
        for part in key.split("."):
            value = value[part]
        set_param(repo, key, "x" if isinstance(value, str) else [value] if not isinstance(value, list) else [])
        try:
            assert set(json.loads(sh("dvc", "status", "--json", cwd=repo))) == {VALIDATES_EVERYTHING}, key
        finally:
            sh("git", "checkout", "params.yaml", cwd=repo)

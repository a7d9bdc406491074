"""The real `dvc` CLI on this project (tiny params): what a repro builds, what an edit reruns,
the run-cache, byte-identical outputs, and models fetched by artifact name."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from aitale.io import read_jsonl
from tests.support.params import set_param
from tests.support.projects import clone_project, downstream, make_project, ran
from tests.support.repo import REPO
from tests.support.shell import git_commit, sh

ALL_STAGES = {
    "check",
    "safety",
    "download",
    "prepare",
    "tokenizer",
    "train",
    "specialise@age-3-5",
    "specialise@age-3-5-fable",
    "package",
    "evaluate",
    "export",
    "distill",
    "classify",
}

# An edit per kind of row of the table "What a params edit reruns" (docs/reproducibility.md), checked with `dvc status`.
EDITS = {
    "data.gutenberg.books": [28],
    "data.gutenberg.timeout_s": 30.0,
    "prepare.seed": 7,
    "model.vocab_size": 512,
    "model.n_layer": 2,
    "train.seed": 7,
    "train.control_dropout": 0.5,
    "train.pretrained.learning_rate": 1.0e-4,
    "specialise.epochs": 3,
    "specialise.chain.age-3-5.age_group": "6-8",
    "generate.temperature": 0.7,
    "evaluate.prompt_fraction": 0.5,
    "evaluate.sample_prompts": ["Another Tale"],
    "evaluate.stride": 32,
    "export.latency_tokens": 3,
    "distill.temperature": 3.0,
    "safety.regularization": 8.0,
    "classify.regularization": 2.0,
    "human_eval.baseline": "models/specialised/age-3-5-fable",
}
CHAIN = "specialise.chain."  # one row for every entry: `<name>` stands for the entry edited


def rerun_table() -> list[tuple[list[str], str]]:
    """The invalidation table of docs/reproducibility.md: (the key patterns of a row, the cell naming the stages it
    reruns)."""
    section = REPO.joinpath("docs/reproducibility.md").read_text().split("## What a params edit reruns", 1)[1]
    rows = re.findall(r"^\| (`[^|]+`) \| (.+) \|$", section, flags=re.MULTILINE)
    return [(re.findall(r"`([^`]+)`", keys), cell) for keys, cell in rows]


def row_for(key: str) -> str:
    """The cell of the row whose pattern (a key, or ``prefix.*``) matches ``key`` most closely."""

    def length(pattern: str) -> int:
        if pattern == key:
            return len(pattern) + 1
        prefix = pattern.removesuffix("*")
        return len(prefix) if pattern.endswith(".*") and key.startswith(prefix) else -1

    best = max(((length(pattern), cell) for patterns, cell in rerun_table() for pattern in patterns), default=(-1, ""))
    assert best[0] >= 0, f"{key}: no row of docs/reproducibility.md's table covers it"
    return best[1]


def chain_key(key: str) -> str:
    return CHAIN + "<name>.*" if key.startswith(CHAIN) else key


def expand(cell: str, stages: set[str], entry: str | None = None) -> set[str]:
    """The stages a cell names: ``specialise@*`` is every chain entry, ``specialise@<name>`` the one edited."""
    names = re.findall(r"`([^`]+)`", cell.replace("<name>", entry or "<name>"))
    return {
        stage
        for name in names
        for stage in stages
        if stage == name or (name.endswith("@*") and stage.startswith(name[:-1]))
    }


def lock_hashes(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.fixture(scope="module")
def repo(dvc_project, tmp_path_factory) -> Path:
    """A clone of the reproduced project, outputs checked out; the tests below edit and rerun it."""
    return clone_project(dvc_project, tmp_path_factory.mktemp("pipeline") / "ai-tale")


@pytest.fixture(scope="module")
def pristine(dvc_project, tmp_path_factory) -> Path:
    """A clone nobody reruns: each table test edits params.yaml, asks `dvc status`, and reverts."""
    return clone_project(dvc_project, tmp_path_factory.mktemp("table") / "ai-tale")


def test_repro_built_every_output_and_then_runs_nothing(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == ALL_STAGES
    missing = [path for path in lock_hashes(repo) if not (repo / path).exists()]
    assert not missing
    assert (repo / "models/storyteller/model.safetensors").exists()
    assert (repo / "evaluation_results/samples.html").exists()
    assert ran(sh("dvc", "repro", cwd=repo)) == set()
    assert "up to date" in sh("dvc", "status", cwd=repo)


def test_every_params_key_has_a_row_within_what_dvc_reruns(pristine):
    """Every key of params.yaml falls under a row, and the row starts from the stages that read the key (as
    dvc.yaml declares them) and stays within what lies downstream of them: a rerun whose outputs come out
    unchanged stops there, which only a real repro shows (see the tests below)."""
    from tests.test_dvc_deps import covered, declared_params, leaf_keys, stages_of

    stages = stages_of(pristine)
    for key in leaf_keys(yaml.safe_load((pristine / "params.yaml").read_text())):
        direct = {"check"} | {name for name, stage in stages.items() if covered(key, declared_params(stage))}
        entry = key.removeprefix(CHAIN).split(".")[0] if key.startswith(CHAIN) else None
        row = expand(row_for(chain_key(key)), set(stages), entry)
        assert direct <= row <= downstream(pristine, direct - {"check"}) | {"check"}, key


@pytest.mark.parametrize("key", EDITS)
def test_an_edit_invalidates_what_the_rerun_table_says(pristine, key):
    """`dvc status` names the stages an edit touches directly, which the row must hold."""
    set_param(pristine, key, EDITS[key])
    try:
        direct = set(yaml.safe_load(sh("dvc", "status", "--json", cwd=pristine)) or {})
        entry = key.removeprefix(CHAIN).split(".")[0] if key.startswith(CHAIN) else None
        row = expand(row_for(chain_key(key)), ALL_STAGES, entry)
        assert direct <= row <= downstream(pristine, direct - {"check"}) | {"check"}
    finally:
        sh("git", "checkout", "params.yaml", cwd=pristine)


@pytest.mark.parametrize(
    "key",
    [
        # the whole pipeline after train (minutes): `dvc exp run` of a train param in the default
        # suite (tests/test_experiments.py) reruns the same stages
        pytest.param("train.seed", marks=pytest.mark.slow),
        "generate.temperature",
        "evaluate.prompt_fraction",
        "data.gutenberg.timeout_s",
    ],
)
def test_repro_after_an_edit_reruns_exactly_the_table_row(repo, key):
    assert ran(sh("dvc", "repro", cwd=repo)) <= {"check"}  # the last test's edit reverted: restored, or nothing
    set_param(repo, key, EDITS[key])
    try:
        assert ran(sh("dvc", "repro", cwd=repo)) == expand(row_for(key), ALL_STAGES)
    finally:
        sh("git", "checkout", "params.yaml", cwd=repo)


def test_reverting_an_edit_restores_the_outputs_from_the_run_cache(repo):
    sh("git", "checkout", "params.yaml", cwd=repo)
    sh("dvc", "repro", cwd=repo)  # whatever an earlier test left in dvc.lock is brought back first
    before = lock_hashes(repo)
    set_param(repo, "generate.temperature", EDITS["generate.temperature"])
    sh("dvc", "repro", cwd=repo)
    assert lock_hashes(repo)["models/storyteller"] != before["models/storyteller"]  # its generation_config.json
    sh("git", "checkout", "params.yaml", cwd=repo)
    output = sh("dvc", "repro", cwd=repo)
    # Only the second-long validation may run again (when DVC finds no lock entry of it to skip with)
    assert ran(output) <= {"check"}, "a stage was rerun instead of restored"
    assert "Stage 'package' is cached - skipping run, checking out outputs" in output
    after = lock_hashes(repo)
    # metrics/speed/ keeps the timings of the last run, so only the results are compared
    assert {path: md5 for path, md5 in after.items() if not path.startswith("metrics/speed")} == {
        path: md5 for path, md5 in before.items() if not path.startswith("metrics/speed")
    }
    assert "up to date" in sh("dvc", "status", cwd=repo)


@pytest.mark.slow  # a second tiny repro (minutes); make bench's clean-clone repro compares a full one with dvc.lock
def test_two_clean_runs_give_the_same_hash_for_every_output(dvc_project, tmp_path):
    other = make_project(tmp_path / "elsewhere")  # another folder: no absolute path may leak into an output
    sh("dvc", "repro", cwd=other)
    first, second = lock_hashes(dvc_project), lock_hashes(other)
    assert first.keys() == second.keys()
    assert {path for path in first if first[path] != second[path]} == set()


def test_adding_a_chain_entry_adds_a_stage_and_a_model(repo):
    sh("git", "checkout", "params.yaml", cwd=repo)
    val_themes = Counter(t for r in read_jsonl(repo / "data/processed/val.jsonl") for t in r["themes"])
    theme = val_themes.most_common(1)[0][0]
    set_param(repo, f"specialise.chain.theme-{theme}", {"parent": "age-3-5", "theme": theme})
    assert ran(sh("dvc", "repro", cwd=repo)) == {"check", f"specialise@theme-{theme}", "package"}
    assert (repo / f"models/specialised/theme-{theme}/config.json").exists()
    metrics = yaml.safe_load((repo / f"metrics/specialise/theme-{theme}.json").read_text())
    assert metrics["parent"] == "age-3-5" and metrics["slice"] == {"theme": theme}
    sh("git", "checkout", "params.yaml", cwd=repo)


def test_models_are_declared_artifacts_fetched_by_name_and_version(dvc_project, tmp_path):
    registry = clone_project(dvc_project, tmp_path / "registry")
    declared = yaml.safe_load((registry / "dvc.yaml").read_text())["artifacts"]
    assert {"storyteller", "storyteller-specialised"} <= set(declared)
    assert all(a["type"] == "model" and a["desc"] and a["labels"] for a in declared.values())
    for key, value in (("user.name", "AI Tale tests"), ("user.email", "tests@ai-tale.invalid")):
        sh("git", "config", key, value, cwd=registry)
    sh("gto", "register", "storyteller", "--version", "v1.0.0", cwd=registry)
    set_param(registry, "generate.temperature", 0.55)
    sh("dvc", "repro", "package", cwd=registry)
    git_commit(registry, "storyteller: cooler sampling")
    sh("gto", "register", "storyteller", "--version", "v1.1.0", cwd=registry)

    def temperature(rev: str | None) -> float:
        out = tmp_path / f"got-{rev}"
        sh(
            "dvc",
            "artifacts",
            "get",
            str(registry),
            "storyteller",
            *(["--rev", rev] if rev else []),
            "-o",
            str(out),
            cwd=tmp_path,
        )
        assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
        return yaml.safe_load((out / "generation_config.json").read_text())["temperature"]

    assert temperature("v1.0.0") == 0.8
    assert temperature("v1.1.0") == temperature(None) == 0.55


@pytest.mark.slow
def test_a_clean_clone_of_the_default_pipeline_reproduces_the_committed_lock(tmp_path):
    """Full size, minutes: `make bench` runs it. Checks the committed state (HEAD), not the workspace."""
    clone = tmp_path / "ai-tale"
    sh("git", "clone", "-q", str(REPO), str(clone), cwd=tmp_path)
    sh("dvc", "repro", cwd=clone)
    assert sh("git", "status", "--porcelain", "dvc.lock", cwd=clone).strip() == ""


def only_params_changed(repo: Path) -> bool:
    """`dvc status` reports params edits and nothing else: no output deleted or modified."""
    status = json.loads(sh("dvc", "status", "--json", cwd=repo))
    changes = [
        change
        for entries in status.values()
        for entry in entries
        if isinstance(entry, dict)
        for change in entry.items()
    ]
    return bool(changes) and all(kind == "changed deps" and set(deps) == {"params.yaml"} for kind, deps in changes)


def outputs_present(repo: Path) -> list[str]:
    return [path for path in lock_hashes(repo) if (repo / path).exists()]


def test_a_bad_edit_stops_repro_at_the_check_and_keeps_every_output(dvc_project, tmp_path):
    repo = clone_project(dvc_project, tmp_path / "ai-tale")
    before = outputs_present(repo)
    set_param(repo, "train.scratch.learning_rate", -1)
    set_param(repo, "generate.top_p", 1.7)
    result = subprocess.run(
        ["dvc", "repro"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "train.scratch.learning_rate: Input should be greater than 0 (got -1)" in output
    assert "generate.top_p: Input should be less than or equal to 1 (got 1.7)" in output
    assert ran(output) == {"check"}
    assert outputs_present(repo) == before and len(before) == len(lock_hashes(repo))
    assert only_params_changed(repo)


def test_a_bad_experiment_stops_at_the_check_and_keeps_every_output(dvc_project, tmp_path):
    repo = clone_project(dvc_project, tmp_path / "ai-tale")
    before = outputs_present(repo)
    result = subprocess.run(
        ["dvc", "exp", "run", "-S", "train.seed=seven"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "train.seed: Input should be a valid integer (got 'seven')" in output
    assert ran(output) == {"check"}
    assert outputs_present(repo) == before and only_params_changed(repo)

"""The real `dvc` CLI on this project (tiny params): what a repro builds, what an edit reruns,
the run-cache, byte-identical outputs, and models fetched by artifact name."""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from aitale.io import read_jsonl
from tests.conftest import REPO, clone_project, downstream, git_commit, make_project, ran, sh

ALL_STAGES = {"download", "prepare", "tokenizer", "train", "specialise@age-3-5", "stylise@fable", "package", "evaluate",
              "export", "distill"}

# One new value per row of the README's table "What a params edit reruns".
EDITS = {
    "data.gutenberg.books": [28],
    "prepare.seed": 7,
    "model.vocab_size": 512,
    "model.n_layer": 2,
    "train.seed": 7,
    "specialise.epochs": 3,
    "specialise.groups.age-3-5": {"age_group": "6-8"},
    "generate.temperature": 0.7,
    "evaluate.prompt_fraction": 0.5,
    "evaluate.sample_prompts": ["Another Tale"],
    "evaluate.stride": 32,
    "export.latency_tokens": 3,
    "distill.temperature": 3.0,
    "human_eval.baseline": "models/specialised/fable",
}


def set_param(repo: Path, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    *parents, leaf = key.split(".")
    section = params
    for name in parents:
        section = section[name]
    section[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def readme_table() -> dict[str, str]:
    """The README's invalidation table: edited param -> the cell naming the stages it reruns."""
    section = REPO.joinpath("README.md").read_text().split("## What a params edit reruns", 1)[1]
    rows = re.findall(r"^\| `([^`]+)`[^|]* \| (.+) \|$", section, flags=re.MULTILINE)
    return dict(rows)


def expand(cell: str, stages: set[str]) -> set[str]:
    names = re.findall(r"`([^`]+)`", cell)
    return {stage for name in names for stage in stages
            if stage == name or (name.endswith("@*") and stage.startswith(name[:-1]))}


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


def test_the_readme_table_covers_every_params_section():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    table = readme_table()
    assert set(table) == set(EDITS)
    assert {key.split(".")[0] for key in table} == set(params)


@pytest.mark.parametrize("key", EDITS)
def test_an_edit_invalidates_what_the_readme_table_says(pristine, key):
    """`dvc status` names the stages an edit touches directly; the table's row must start from
    exactly those and stay within what lies downstream of them (a rerun that leaves an output
    unchanged stops there, which only a real repro shows: see the next test)."""
    set_param(pristine, key, EDITS[key])
    try:
        direct = set(yaml.safe_load(sh("dvc", "status", "--json", cwd=pristine)) or {})
        row = expand(readme_table()[key], ALL_STAGES)
        assert direct <= row <= downstream(pristine, direct)
    finally:
        sh("git", "checkout", "params.yaml", cwd=pristine)


@pytest.mark.parametrize("key", ["train.seed", "specialise.epochs", "generate.temperature", "evaluate.prompt_fraction",
                                 "export.latency_tokens", "distill.temperature"])
def test_repro_after_an_edit_reruns_exactly_the_table_row(repo, key):
    assert ran(sh("dvc", "repro", cwd=repo)) == set()
    set_param(repo, key, EDITS[key])
    try:
        assert ran(sh("dvc", "repro", cwd=repo)) == expand(readme_table()[key], ALL_STAGES)
    finally:
        sh("git", "checkout", "params.yaml", cwd=repo)


def test_reverting_an_edit_restores_the_outputs_from_the_run_cache(repo):
    sh("git", "checkout", "params.yaml", cwd=repo)
    set_param(repo, "train.seed", EDITS["train.seed"])
    sh("dvc", "repro", cwd=repo)
    assert sh("git", "diff", "HEAD", "--name-only", "dvc.lock", cwd=repo).strip() == "dvc.lock"
    sh("git", "checkout", "params.yaml", cwd=repo)
    output = sh("dvc", "repro", cwd=repo)
    assert ran(output) == set(), "a stage was rerun instead of restored"
    assert "Stage 'train' is cached - skipping run, checking out outputs" in output
    # metrics/speed/ keeps the timings of the last run, so only the results are compared
    assert sh("git", "diff", "HEAD", "--name-only", "dvc.lock", "metrics/train.json", "metrics/eval.json",
              cwd=repo).strip() == ""
    assert "up to date" in sh("dvc", "status", cwd=repo)


def test_two_clean_runs_give_the_same_hash_for_every_output(dvc_project, tmp_path):
    other = make_project(tmp_path / "elsewhere")  # another folder: no absolute path may leak into an output
    sh("dvc", "repro", cwd=other)
    first, second = lock_hashes(dvc_project), lock_hashes(other)
    assert first.keys() == second.keys()
    assert {path for path in first if first[path] != second[path]} == set()


def test_adding_a_group_adds_a_stage_and_a_model(repo):
    sh("git", "checkout", "params.yaml", cwd=repo)
    val_themes = Counter(t for r in read_jsonl(repo / "data/processed/val.jsonl") for t in r["themes"])
    theme = val_themes.most_common(1)[0][0]
    set_param(repo, f"specialise.groups.theme-{theme}", {"theme": theme})
    assert ran(sh("dvc", "repro", cwd=repo)) == {f"specialise@theme-{theme}", "package"}
    assert (repo / f"models/specialised/theme-{theme}/config.json").exists()
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
        sh("dvc", "artifacts", "get", str(registry), "storyteller", *(["--rev", rev] if rev else []), "-o", str(out),
           cwd=tmp_path)
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

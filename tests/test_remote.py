"""`dvc push` from one workspace, `dvc pull` in a fresh clone: everything comes back and nothing reruns.

Two remotes: the committed default (a folder beside the repository) and an S3 bucket on a moto server
on 127.0.0.1, reached through the dvc-s3 plugin. The real `dvc` CLI throughout, no network beyond localhost.
The pushing workspace shares the session project's cache; the pulling clone has an empty cache of its own.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml
from moto.server import ThreadedMotoServer
from transformers import AutoModelForCausalLM

from tests.support.projects import clone_project
from tests.support.shell import git_commit, sh

# What a clone can only get from the remote: DVC-cached outputs, ignored by git.
PULLED = [
    "data/raw/gutenberg",
    "data/processed",
    "models/tokenizer",
    "models/checkpoints/storyteller",
    "models/weights/storyteller",
    "models/storyteller",
    "models/specialised",
    "models/onnx",
    "models/student",
    "evaluation_results",
    "dvclive/train",
]
BUCKET = "ai-tale-team"
KEYS = {"access_key_id": "team-key-id", "secret_access_key": "team-secret"}


def lock_outs(repo: Path) -> set[str]:
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {out["path"] for stage in stages.values() for out in stage.get("outs", [])}


def push(source: Path) -> None:
    """`dvc push` to the default remote; the remote then holds everything in the cache."""
    output = sh("dvc", "push", cwd=source)
    assert re.search(r"\d+ files? pushed", output), output
    assert "in sync" in sh("dvc", "status", "--cloud", cwd=source)


def assert_pull_restores_everything(fresh: Path) -> None:
    assert set(PULLED) <= lock_outs(fresh)
    assert not any((fresh / path).exists() for path in PULLED)  # git alone does not bring them
    sh("dvc", "pull", cwd=fresh)
    assert [path for path in sorted(lock_outs(fresh)) if not (fresh / path).exists()] == []
    assert "Data and pipelines are up to date" in sh("dvc", "status", cwd=fresh)
    assert "Running stage" not in sh("dvc", "repro", cwd=fresh)
    model = AutoModelForCausalLM.from_pretrained(fresh / "models/storyteller")
    assert model.config.n_layer == yaml.safe_load((fresh / "params.yaml").read_text())["model"]["n_layer"]


def test_default_local_remote_round_trip(dvc_project, tmp_path):
    """The committed remote `local` is a folder beside the repository: two sibling clones share it."""
    source = clone_project(dvc_project, tmp_path / "source")
    storage = tmp_path / "ai-tale-dvc-storage"
    assert sh("dvc", "config", "core.remote", cwd=source).strip() == "local"
    assert sh("dvc", "config", "remote.local.url", cwd=source).strip() == str(storage)
    push(source)
    assert any(path.is_file() for path in storage.rglob("*"))

    fresh = tmp_path / "fresh"
    sh("git", "clone", "-q", str(dvc_project), str(fresh), cwd=tmp_path)
    assert_pull_restores_everything(fresh)


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """A real S3 endpoint on 127.0.0.1 (moto in server mode) with an empty bucket; AWS settings of the host hidden."""
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credential lookups on the network
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def set_credentials(repo: Path) -> None:
    """Each teammate's keys go to the git-ignored `.dvc/config.local`, never to the committed `.dvc/config`."""
    for option, value in KEYS.items():
        sh("dvc", "remote", "modify", "--local", "team", option, value, cwd=repo)
    assert KEYS["secret_access_key"] in (repo / ".dvc/config.local").read_text()
    assert KEYS["secret_access_key"] not in (repo / ".dvc/config").read_text()


def test_s3_remote_round_trip(dvc_project, tmp_path, s3):
    source = clone_project(dvc_project, tmp_path / "source")
    sh("dvc", "remote", "add", "--default", "team", f"s3://{BUCKET}/ai-tale", cwd=source)
    sh("dvc", "remote", "modify", "team", "endpointurl", s3.meta.endpoint_url, cwd=source)
    set_credentials(source)
    git_commit(source, "Team S3 remote")
    assert "secret_access_key" not in sh("git", "show", "HEAD:.dvc/config", cwd=source)
    push(source)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="ai-tale/")["KeyCount"] > 0

    fresh = tmp_path / "fresh"
    sh("git", "clone", "-q", str(source), str(fresh), cwd=tmp_path)
    no_keys = subprocess.run([Path(sys.executable).parent / "dvc", "pull"], cwd=fresh, capture_output=True, text=True)
    assert no_keys.returncode != 0 and "Unable to locate credentials" in no_keys.stderr  # the keys are not in git
    set_credentials(fresh)
    assert_pull_restores_everything(fresh)

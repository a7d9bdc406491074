"""A real story server for the tests: ``python -m aitale.serve`` as a subprocess on a free loopback port."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.repo import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, process: subprocess.Popen, port: int, log: Path):
        self.process, self.port, self.log = process, port, log
        self.url = f"http://127.0.0.1:{port}"

    def client(self, **options) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **options)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.output()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"not ready after {timeout_s}s:\n{self.output()[-3000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@contextmanager
def serve(project: Path, log_dir: Path, ready: bool = True, **settings):
    """The server on ``project``'s exported model and screen, with settings as AITALE_SERVE_* variables."""
    port = free_port()
    env = {
        **os.environ,
        "AITALE_SERVE_PORT": str(port),
        "AITALE_SERVE_MODEL_DIR": str(project / "models/onnx"),
        "AITALE_SERVE_SCREEN_DIR": str(project / "models/safety"),
        **{f"AITALE_SERVE_{k.upper()}": str(v) for k, v in settings.items()},
    }
    log = log_dir / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aitale.serve"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(process, port, log)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop()

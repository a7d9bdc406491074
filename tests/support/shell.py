"""The real command-line tools (``dvc``, ``git``), run with this interpreter's environment first on PATH."""

import os
import subprocess
import sys
from pathlib import Path


def sh(*command: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command (``dvc``, ``git``) with this interpreter's environment first on PATH; fail on error."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **(env or {}),
    }
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def git_commit(repo: Path, message: str) -> None:
    sh("git", "add", "-A", cwd=repo)
    sh(
        "git",
        "-c",
        "user.name=AI Tale tests",
        "-c",
        "user.email=tests@ai-tale.invalid",
        "commit",
        "-qm",
        message,
        cwd=repo,
    )

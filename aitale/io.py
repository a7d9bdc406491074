"""Writing outputs so that a killed stage or a full disk never leaves a file DVC would accept.

Everything is written beside its destination under a temporary name and moved into place
with one ``os.replace`` once complete: a reader sees the old output, or none, or the new one.
Outputs get the mode a plain ``open`` would give them (0666 or 0777 less the umask), not the
private mode of the temporary file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_dir(destination: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``destination`` only if the block succeeds."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the output should not be
    try:
        yield staging
        if destination.exists():
            shutil.rmtree(destination) if destination.is_dir() else destination.unlink()
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def replace_dir(source: str | Path, destination: str | Path) -> None:
    """Move the folder ``source`` to ``destination``, in place of whatever is there."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.is_dir():
        shutil.rmtree(destination)
    elif destination.exists():
        destination.unlink()
    os.replace(source, destination)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, flushed to disk before it takes the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; the output should not be
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows))


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in chunks (a model file can be larger than memory allows)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]

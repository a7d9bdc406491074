"""Fetching Project Gutenberg books from a mirror: a URL template or a local folder."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from aitale.errors import SourceError

# Identifies the pipeline to mirrors, as Project Gutenberg's robot policy asks.
USER_AGENT = "ai-tale-pipeline/1.0 (+dvc stage 'download')"


def book_location(mirror: str, book: int) -> str:
    """Where ``book`` lives on ``mirror``: a URL, a path template, or ``folder/pg{id}.txt``."""
    if "{id}" in mirror:
        return mirror.format(id=book)
    if "://" in mirror:
        raise SourceError(f"data.gutenberg.mirror: a URL mirror needs an {{id}} placeholder, got {mirror!r}")
    return str(Path(mirror) / f"pg{book}.txt")


def fetch_book(mirror: str, book: int, timeout_s: float) -> bytes:
    """The raw bytes of ``book``; the error names the book and how to get past it."""
    location = book_location(mirror, book)
    fix = (
        f"point data.gutenberg.mirror at a reachable mirror (a URL template with {{id}} or a folder of "
        f"pg{{id}}.txt files), or drop {book} from data.gutenberg.books"
    )
    try:
        if "://" in location:
            request = urllib.request.Request(location, headers={"User-Agent": USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.read()
        return Path(location).read_bytes()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise SourceError(f"book {book}: cannot fetch {location}: {err}. To fix: {fix}") from None


def check_sha256(data: bytes, book: int, expected: str | None) -> str:
    """The sha256 of ``data``; raises if a pinned digest does not match."""
    digest = hashlib.sha256(data).hexdigest()
    if expected is not None and digest != expected:
        raise SourceError(
            f"book {book}: sha256 mismatch: expected {expected}, got {digest}. The mirror serves a different "
            f"or corrupted file: fix the mirror, or update data.gutenberg.sha256[{book}] if the new file is right"
        )
    return digest


def header_field(text: str, name: str) -> str | None:
    """A field of the Gutenberg header (``Title: ...``), read before the START marker."""
    for line in text.split("*** START OF", 1)[0].splitlines():
        if line.startswith(f"{name}:"):
            return line.partition(":")[2].strip() or None
    return None

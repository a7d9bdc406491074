"""Download stage: fetch the Project Gutenberg books listed in ``data.gutenberg.books``.

Each book is checked (UTF-8, licence markers present, sha256 where pinned) before anything
is written, so a bad mirror fails the stage instead of poisoning ``prepare``. The output
folder holds ``pg{id}.txt`` per book and ``manifest.json`` with titles and digests.

    python -m stages.download --output-dir data/raw/gutenberg
    python -m stages.download --output-dir /tmp/books --gutenberg.books '[503]' \\
        --gutenberg.mirror ../shared/corpus/gutenberg
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

from aitale import cli
from aitale.data.fetch import check_sha256, fetch_book, header_field
from aitale.data.gutenberg import decode_book, strip_boilerplate
from aitale.errors import ParamsError, SourceError
from aitale.io import atomic_dir, write_json
from aitale.params import DataParams, load_section

log = logging.getLogger("download")


def main(argv: list[str] | None = None) -> int:
    parser = cli.stage_parser(__doc__, DataParams, "data")
    parser.add_argument("--output-dir", required=True, help="folder to write the books and manifest.json into")
    args = parser.parse_args(argv)
    cli.setup_logging()
    try:
        params = load_section(DataParams, "data", args.config, cli.overrides(args)).gutenberg
        with atomic_dir(args.output_dir) as staging:
            manifest = []
            for book in tqdm(params.books, desc="books", unit="book", disable=not params.books):
                raw = fetch_book(params.mirror, book, params.timeout_s)
                digest = check_sha256(raw, book, params.sha256.get(book))
                text = decode_book(raw, book)
                strip_boilerplate(text, book)  # raises on a truncated or non-Gutenberg file
                (staging / f"pg{book}.txt").write_bytes(raw)
                title = header_field(text, "Title") or f"Gutenberg book {book}"
                manifest.append(
                    {
                        "id": book,
                        "title": title,
                        "author": header_field(text, "Author"),
                        "bytes": len(raw),
                        "sha256": digest,
                    }
                )
                log.info("book %d: %s (%d bytes)", book, title, len(raw))
            write_json(staging / "manifest.json", {"books": manifest})
    except (ParamsError, SourceError) as err:
        log.error("%s", err)
        return 2
    log.info("downloaded %d books into %s", len(params.books), args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Debian's WordNet 3.0 database (package ``wordnet-base``, /usr/share/wordnet), read with nltk's reader.

nltk's reader wants one file Debian does not ship, ``lexnames`` (lexicographer file numbers and
names); the same table is in the package's own manual page ``lexnames(5WN)``, so the database is
copied to a private folder (nltk refuses links out of it) with ``lexnames`` written from that page.
Only the ``safety`` stage reads WordNet: what it finds goes into the screen's bundle as word lists.
"""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aitale.errors import SourceError

DATABASE = Path("/usr/share/wordnet")
MANUAL = Path("/usr/share/man/man5/lexnames.5WN.gz")
FILES = tuple(f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")) + tuple(
    f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")
)
MISSING = "the WordNet database is not installed ({}): `apt-get install wordnet-base` (make system-deps)"


def _lexnames(manual: Path) -> str:
    with gzip.open(manual, "rt", encoding="utf-8") as handle:
        rows = re.findall(r"^(\d\d)\t(\S+)\s", handle.read(), flags=re.MULTILINE)
    category = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
    return "".join(f"{number}\t{name}\t{category[name.split('.')[0]]}\n" for number, name in rows)


@contextmanager
def open_wordnet(database: Path = DATABASE, manual: Path = MANUAL) -> Iterator:
    """nltk's ``WordNetCorpusReader`` over Debian's files; a :class:`SourceError` saying how to install them."""
    missing = [str(p) for p in [*(database / f for f in FILES), manual] if not p.exists()]
    if missing:
        raise SourceError(MISSING.format(", ".join(missing)))
    import nltk.data

    with tempfile.TemporaryDirectory(prefix="wordnet-") as folder:
        root = Path(folder)
        for name in FILES:
            shutil.copyfile(database / name, root / name)
        (root / "lexnames").write_text(_lexnames(manual), encoding="utf-8")
        nltk.data.path.append(str(root.resolve()))  # nltk reads only below its data paths
        try:
            with warnings.catch_warnings():  # "multilingual functions are not available": none are used
                warnings.simplefilter("ignore", UserWarning)
                reader = _reader_class()(str(root.resolve()), None)
            yield reader
        finally:
            nltk.data.path.remove(str(root.resolve()))


def _reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class Reader(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None  # nltk maps other versions onto its own download of 3.0 (for OMW); this is 3.0 itself

    return Reader

"""Records which params keys a process reads: test support, never on the product's path.

With this folder on PYTHONPATH and AITALE_PARAMS_READS naming a folder, every Python process that imports
``aitale.params`` writes the dotted keys whose values it read to ``<folder>/<pid>.json`` at exit, with its argv.
``tests/conftest.py`` sets both for the tiny project's ``dvc repro``, and ``tests/test_dvc_deps.py`` compares each
stage's keys with its ``params`` in dvc.yaml.

Python imports ``sitecustomize`` at start-up, before ``aitale`` is on sys.path, so the recorder waits for
``aitale.params`` to load and then wraps it: ``validate`` names each section it returns, and reading a field of a
named section notes ``section.field``. A field that holds a section (or a dict of sections) is a way in, not a
read: its own fields are noted when they are read.
"""

import atexit
import functools
import importlib.abc
import json
import os
import sys
import weakref
from pathlib import Path

FOLDER = os.environ.get("AITALE_PARAMS_READS")
MODULE = "aitale.params"
reads: set[str] = set()
# id of a validated section (or sub-section) -> (a weak reference to it, its dotted key). The reference tells a
# section from a later object given the same id once the section is gone (a dropped copy, say).
paths: dict[int, tuple[weakref.ref, str]] = {}


def remember(section, key: str) -> None:
    paths[id(section)] = (weakref.ref(section), key)


def path_of(section) -> str | None:
    ref, key = paths.get(id(section), (None, None))
    return key if ref is not None and ref() is section else None


def note(key: str, value, strict: type) -> None:
    if isinstance(value, strict):
        remember(value, key)
    elif isinstance(value, dict) and value and all(isinstance(v, strict) for v in value.values()):
        for part, inner in value.items():
            remember(inner, f"{key}.{part}")
    else:
        reads.add(key)


def write() -> None:
    folder = Path(FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}.json").write_text(json.dumps({"argv": sys.argv, "reads": sorted(reads)}))


def instrument(params) -> None:
    """Patch the just-executed ``aitale.params`` module (before any other module takes names from it)."""
    strict, validate = params.Strict, params.validate

    def __getattribute__(self, name):
        value = super(strict, self).__getattribute__(name)
        if name in type(self).model_fields and (path := path_of(self)) is not None:
            note(f"{path}.{name}" if path else name, value, strict)
        return value

    def model_dump(self, **kwargs):
        skipped = kwargs.get("exclude") or ()
        for name in (n for n in type(self).model_fields if n not in skipped):
            value = getattr(self, name)  # noted as read, or named when it holds sections
            for inner in value.values() if isinstance(value, dict) else [value]:
                if isinstance(inner, strict):
                    inner.model_dump()
        return super(strict, self).model_dump(**kwargs)

    def model_copy(self, **kwargs):
        copy = super(strict, self).model_copy(**kwargs)
        if (path := path_of(self)) is not None:
            remember(copy, path)
        return copy

    @functools.wraps(validate)
    def named_validate(schema, section_name, values, source="params.yaml"):
        section = validate(schema, section_name, values, source)
        remember(section, section_name)
        return section

    # Assigning the slots on the base class reaches every section class already defined on it.
    strict.__getattribute__ = __getattribute__
    strict.model_dump = model_dump
    strict.model_copy = model_copy
    params.validate = named_validate  # load_section and load_params look it up at call time
    atexit.register(write)


class Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # get_source, get_filename...: the wrapped loader's
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        instrument(module)


class Finder(importlib.abc.MetaPathFinder):
    """Finds ``aitale.params`` with the other finders, then hands it to :class:`Loader`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            if (spec := finder.find_spec(fullname, path, target)) is not None:
                spec.loader = Loader(spec.loader)
                return spec
        return None


if FOLDER:
    sys.meta_path.insert(0, Finder())

"""The command line shared by every stage: ``--config``, ``--help`` and per-key param overrides."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import yaml
from pydantic import BaseModel

from aitale.params import read_params

DEFAULT_CONFIG = "params.yaml"


def stage_parser(description: str | None, schema: type[BaseModel], section: str) -> argparse.ArgumentParser:
    """A parser with ``--config`` and one ``--key.subkey`` option per field of ``section``.

    ``--help`` shows each field's meaning and its current value in ``params.yaml``. Overrides
    are for one-off runs; under DVC the values come from ``params.yaml`` so that they are tracked.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="params file (default: %(default)s)")
    try:
        current = read_params(DEFAULT_CONFIG).get(section) or {}
    except ValueError:
        current = {}
    group = parser.add_argument_group(f"'{section}' params (override {DEFAULT_CONFIG}; values are parsed as YAML)")
    _add_options(group, schema, current, prefix="")
    return parser


def _add_options(group: Any, schema: type[BaseModel], current: Any, prefix: str) -> None:
    for name, field in schema.model_fields.items():
        value = current.get(name) if isinstance(current, dict) else None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _add_options(group, annotation, value, prefix=f"{prefix}{name}.")
            continue
        group.add_argument(
            f"--{prefix}{name}",
            dest=f"param:{prefix}{name}",
            metavar="VALUE",
            type=yaml.safe_load,
            default=argparse.SUPPRESS,
            help=f"{field.description or ''} (now: {value!r})",
        )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--key.subkey`` values given on the command line, as dotted keys."""
    return {key.removeprefix("param:"): value for key, value in vars(args).items() if key.startswith("param:")}


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

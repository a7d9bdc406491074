"""The one place templates are loaded: the Jinja2 files in this folder, rendered by name.

Templates named ``*.html.j2`` are HTML-escaped: every ``{{ value }}`` is escaped unless it is
marked safe (as the ``tojson`` filter's output is, with ``<``, ``>``, ``&`` and ``'`` written as
``\\u00XX`` so that no text can close a ``<script>``). Other templates (Markdown) are rendered
verbatim. An undefined name is an error, never an empty string.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    """The shared environment: this folder's templates, autoescape for HTML, files' trailing newline kept."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **context: Any) -> str:
    """The template ``name`` (a file of this folder) rendered with ``context``."""
    return environment().get_template(name).render(**context)

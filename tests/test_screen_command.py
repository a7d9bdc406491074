"""`python -m stages.screen` on input a careful tester brings (issue 25): one clear line per problem, never a
traceback, outputs readable as the umask allows, and progress on a long input."""

import json
import os
import stat

import pytest

from aitale.io import write_text
from tests.support.stages import run_stage


def screen(dvc_project, source, out, *extra):
    return run_stage(
        "screen",
        "--age-group",
        "3-5",
        "--input",
        str(source),
        "--output",
        str(out),
        "--screen",
        str(dvc_project / "models/safety"),
        *extra,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "fine"}\n{"text": "caf\xe9"}\n', "in.jsonl:2: not UTF-8"),
        (b'{"text": "fine"}\n{"text": "a\\ud800b"}\n', "in.jsonl:2: the text holds a lone surrogate"),
        (b'{"text": "fine"}\n' + b"[" * 100_000 + b"\n", "in.jsonl:2: nested too deeply"),
    ],
)
def test_bad_lines_are_named_with_their_number_and_nothing_is_written(dvc_project, tmp_path, content, message):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(content)
    result = screen(dvc_project, source, out)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


def test_an_unwritable_output_is_one_clear_line(dvc_project, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "A kind fox."}\n')
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = screen(dvc_project, source, blocked / "out.jsonl")
    assert result.returncode == 2 and "out.jsonl" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_outputs_follow_the_umask_and_a_long_input_shows_progress(dvc_project, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"text": f"A kind fox number {i}."}) + "\n" for i in range(300)))
    result = screen(dvc_project, source, out)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~current_umask()
    assert "300/300" in result.stderr  # the progress bar's last count


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_atomic_writes_take_the_umask_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644

"""Functions fit on a screen: at most 60 lines in aitale/ and stages/, 100 in benchmarks/ (ENGINEERING.md).

Measured as ``ast`` sees them (first line of the ``def`` to the last of its body, decorators excluded), for
every function and method, nested ones included, so that a new long function fails here by name.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMITS = {"aitale": 60, "stages": 60, "benchmarks": 100}


def long_functions(source: str, limit: int) -> list[tuple[str, int, int]]:
    """(name, first line, length) of each function in ``source`` longer than ``limit`` lines."""
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_function_is_longer_than_its_folder_allows():
    over = []
    for folder, limit in LIMITS.items():
        files = sorted((REPO / folder).rglob("*.py"))
        assert files, f"{folder}/: no Python files found; has the layout moved?"
        for path in files:
            name = path.relative_to(REPO).as_posix()
            for function, line, length in long_functions(path.read_text(encoding="utf-8"), limit):
                over.append(f"{name}:{line} {function} is {length} lines (limit {limit})")
    assert not over, "functions over their folder's limit; split them:\n  " + "\n  ".join(over)


def test_the_measure_counts_from_def_to_the_last_line_of_the_body_and_sees_nested_functions():
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    source = f"@decorator\ndef outer():\n    def inner():\n{body.replace('    ', '        ')}        return 0\n"
    # outer: its def, inner's def, 60 assignments and inner's return = 63 lines; inner: 62; the decorator not counted
    assert long_functions(source, 60) == [("outer", 2, 63), ("inner", 3, 62)]
    assert long_functions(source, 63) == []

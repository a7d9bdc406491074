"""dvc.yaml's code deps, written from the code: each stage lists the import closure of its module.

    python -m tests.dvc_deps --write   # after adding, moving or removing an import: rewrite the code deps
    python -m tests.dvc_deps           # show what --write would change; exit 1 if anything

A stage's code deps are the last entries of its ``deps``, under the comment ``CODE``; the rest of dvc.yaml (data
deps, params, outs, comments) stays as written. tests/test_dvc_deps.py checks that dvc.yaml is what this writes.
"""

import argparse
import ast
import difflib
import re
import sys
from pathlib import Path

import yaml

from aitale.io import write_text

REPO = Path(__file__).resolve().parents[1]
CODE = "# code: the import closure of the stage's module (python -m tests.dvc_deps --write)"
CODE_DEP = re.compile(r"\s+- (aitale|stages)/\S+\.py")


def module_file(module: str) -> Path | None:
    """The source file of a module of this repository (``aitale.io`` -> aitale/io.py), None for another package."""
    path = REPO.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_closure(module: str) -> set[str]:
    """The repository files ``module`` runs: itself and everything it imports from aitale/ or stages/, directly or
    not (imports inside functions included), as paths relative to the repository root.

    Package ``__init__`` files holding only a docstring and imports are left out: they run no code of their own.
    """
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages it lives in
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return {str(path.relative_to(REPO)) for path in seen if not _package_face(path)}


def _package_face(path: Path) -> bool:
    return path.name == "__init__.py" and all(
        isinstance(node, (ast.Expr, ast.Import, ast.ImportFrom)) for node in ast.parse(path.read_text()).body
    )


def stage_modules(text: str) -> dict[str, str]:
    """Each stage's module (``stages.train``), read from its command (a ``foreach`` stage's is under ``do``)."""
    modules = {}
    for name, stage in yaml.safe_load(text)["stages"].items():
        match = re.search(r"python -m (stages\.\w+)", stage.get("do", stage)["cmd"])
        if not match:
            raise SystemExit(f"dvc.yaml: stage {name}'s command is not `python -m stages.<name>`")
        modules[name] = match.group(1)
    return modules


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def with_code_deps(lines: list[str], name: str, code: set[str]) -> list[str]:
    """One stage's lines, its code deps replaced by ``code`` (sorted) at the end of its ``deps`` list."""
    lines = [line for line in lines if not CODE_DEP.fullmatch(line) and line.strip() != CODE]
    heads = [i for i, line in enumerate(lines) if line.strip() == "deps:"]
    if len(heads) != 1:
        raise SystemExit(f"dvc.yaml: stage {name} needs one `deps:` list (its data deps, or none) for its code")
    head, indent = heads[0], _indent(lines[heads[0]]) + 2
    end = head + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) >= indent):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    return [*lines[:end], " " * indent + CODE, *(f"{' ' * indent}- {path}" for path in sorted(code)), *lines[end:]]


def render(text: str) -> str:
    """dvc.yaml ``text`` with every stage's code deps written from its module's import closure."""
    modules = stage_modules(text)
    lines = text.splitlines()
    start = lines.index("stages:") + 1
    stop = next((i for i in range(start, len(lines)) if lines[i][:1] not in ("", " ")), len(lines))
    heads = [i for i in range(start, stop) if re.fullmatch(r"  [\w@-]+:(\s+#.*)?", lines[i])]
    out = lines[:start]
    for head, end in zip(heads, [*heads[1:], stop]):
        name = lines[head].split(":")[0].strip()
        out += with_code_deps(lines[head:end], name, import_closure(modules[name]))
    return "\n".join(out + lines[stop:]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml (default: show the difference)")
    args = parser.parse_args(argv)
    path = REPO / "dvc.yaml"
    text = path.read_text()
    written = render(text)
    if args.write:
        write_text(path, written)
        return 0
    diff = difflib.unified_diff(text.splitlines(True), written.splitlines(True), "dvc.yaml", "dvc.yaml (written)")
    sys.stdout.writelines(diff)
    return int(written != text)


if __name__ == "__main__":
    sys.exit(main())

"""The package's shape is a checked contract: layers (pyproject's [tool.importlinter]), no import circles,
no private names across modules, and function-level imports only with the reason beside them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reid_export"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _is_project_import(node: ast.ImportFrom) -> bool:
    return node.level > 0 or (node.module or "").split(".")[0] == "reid_export"


def test_import_linter_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_private_name_is_imported_from_another_module():
    offenders = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _is_project_import(node):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {private}")
    assert not offenders, "make these public in the module that owns them:\n" + "\n".join(offenders)


def test_function_level_project_imports_say_why_they_are_lazy():
    offenders = []
    for path, tree in _modules():
        lines = path.read_text().splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and _is_project_import(node):
                    text = "\n".join(lines[node.lineno - 1:node.end_lineno])
                    if "# lazy" not in text:
                        offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not offenders, ("import these at module level, or say `# lazy: <heavy dependency>` beside them:\n"
                           + "\n".join(offenders))

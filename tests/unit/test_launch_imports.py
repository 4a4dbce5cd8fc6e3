"""The launcher runs in the project's interpreter, where python419 and its dependencies are not installed: its
package imports the standard library, its own modules (relatively) and what a Celery project has, nothing else,
and parses on the oldest Python a project may have."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import python419.launch

LAUNCH = Path(python419.launch.__file__).parent
PROJECT_HAS = {"celery", "kombu", "uvicorn", "redis"}  # imported lazily, where the child needs them


def imported_tops(path: Path) -> set[str]:
    tops: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            tops.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def test_the_launcher_imports_only_the_standard_library_and_what_the_project_has() -> None:
    files = sorted(LAUNCH.glob("*.py"))
    assert {f.name for f in files} >= {"__main__.py", "child.py", "contract.py", "watchdog.py"}
    for path in files:
        foreign = imported_tops(path) - set(sys.stdlib_module_names) - PROJECT_HAS - {"__future__"}
        assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_the_launcher_parses_as_python_3_9() -> None:
    for path in LAUNCH.glob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 9))

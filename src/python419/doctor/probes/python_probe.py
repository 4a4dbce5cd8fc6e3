"""The project's interpreter, found by the same rule as `p419 up` (python419.interpreter), with what it has: one
version query. The python check reports it; the app probe runs in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from python419.interpreter import NEEDED_BY, InterpreterError, ProjectPython, missing_for
from python419.platforms import Platform
from python419.project import Project, project_interpreter


@dataclass(frozen=True)
class PythonFinding:
    python: ProjectPython | None  # None: no usable interpreter (error says why)
    error: str | None = None
    notes: tuple[str, ...] = ()  # what the search skipped, and why
    missing: tuple[str, ...] = ()  # distributions the project's children need that it lacks

    @property
    def unusable(self) -> str:
        """Why the project's app cannot be imported in it, for the checks that then skip (see python)."""
        if self.python is None:
            return f"the project's interpreter cannot be used: {self.error} (see python)"
        roles = sorted({NEEDED_BY[name] for name in self.missing})
        return (
            f"the project's interpreter {self.python.path} has no {', '.join(self.missing)}, which "
            f"{' and '.join(roles)} need (see python)"
        )


def find_python(project: Project, platform: Platform, environ: Mapping[str, str]) -> PythonFinding:
    notes: list[str] = []
    try:
        python = project_interpreter(project, platform, environ, on_skip=notes.append)
    except InterpreterError as exc:
        return PythonFinding(None, str(exc), tuple(notes))
    return PythonFinding(python, None, tuple(notes), tuple(missing_for(python.versions, project.needs())))

"""python: the interpreter that runs the project's children (the one `p419 up` picks, by the same rule), why it
was chosen, the versions it has, and the combinations known not to work."""

from __future__ import annotations

from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed
from python419.doctor.probes.python_probe import PythonFinding
from python419.interpreter import DISTRIBUTIONS, KNOWN_PROBLEMS, NEEDED_BY, ProjectPython, known_problems

POINT = 'or point p419 at the project\'s environment: --python PATH, or python = "..." in its p419 config'


def quoted(path: str) -> str:
    return f'"{path}"' if any(c in path for c in " '&()") else path


def describe(python: ProjectPython) -> str:
    """`PATH: Python 3.9.18, celery 5.2.7, ...; chosen: REASON`."""
    versions = python.versions
    have = [f"{name} {versions.get(name)}" for name in DISTRIBUTIONS if versions.get(name) is not None]
    return (
        f"{python.path}: Python {versions.python_text}, {', '.join(have) or 'none of ' + ', '.join(DISTRIBUTIONS)}"
        f"; chosen: {python.interpreter.reason}"
    )


def python_outcome(found: PythonFinding) -> Outcome:
    """Pure: the interpreter, why, what it has; a fail when it cannot run the project's children."""
    notes = f" ({'; '.join(found.notes)})" if found.notes else ""
    if found.python is None:
        return failed(
            f"{found.error}{notes}", "give p419 the project's interpreter: --python PATH (as for p419 up)"
        )
    python, versions = found.python, found.python.versions
    detail = describe(python) + notes
    pip = f"{quoted(python.path)} -m pip install"
    if found.missing:
        roles = list(dict.fromkeys(NEEDED_BY[name] for name in found.missing))
        return failed(
            f"{detail}. It has no {', '.join(found.missing)}, which {' and '.join(roles)} need: "
            "p419 up would refuse to start",
            f"{pip} {' '.join(found.missing)}, {POINT}",
        )
    problems = known_problems(versions)
    if problems:
        # What to upgrade: the distributions a problem bounds from above (the others only need to be there).
        names = dict.fromkeys(
            name
            for problem in KNOWN_PROBLEMS
            if problem.applies(versions)
            for name, op, _bound in problem.conditions
            if name != "python" and op in ("<", "<=", "==")
        )
        return failed(
            f"{detail}. Known not to work: " + "; ".join(problems),
            f"{pip} -U {' '.join(names)} (or see each problem's fix above)",
        )
    return passed(detail)


def check_python(ctx: Context) -> Outcome:
    return python_outcome(ctx.python.get())

"""What every verb of the command line shares, without typer: the consoles, the one-line error, the project a
verb works on, the fast exit. `p419 up` (cli_up.py, argparse: it must start fast) and the typer verbs (cli.py)
both use it; rich is imported when something is printed."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from python419.project import Flags, Project
    from python419.settings import Settings
    from python419.supervisor.printer import PlainConsole


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def out() -> Console:
    return _console(False)


def err() -> Console:
    return _console(True)


def stack_console() -> Console | PlainConsole:
    """What `p419 up` prints its stack's lines to: rich's console on a terminal (colours, the start-up spinner),
    else the printer's plain writer, which puts down the same text without importing rich (a journal, a CI log,
    a pipe). As rich decides: FORCE_COLOR or TTY_COMPATIBLE=1 make a pipe a terminal."""
    forced = os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE") == "1"
    if forced or sys.stdout is None or sys.stdout.isatty():  # None: pythonw, where rich copes as before
        return out()
    from python419.supervisor.printer import PlainConsole

    return PlainConsole(sys.stdout)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def fail(message: str, code: int = 1) -> SystemExit:
    """`raise fail(...)`: one red line on stderr, then exit `code` (2: the user must change something)."""
    err().print(f"[bold red]p419:[/] {escape(message)}", markup=True, soft_wrap=True)
    return SystemExit(code)


def current(flags: Flags | None = None) -> tuple[Project, Settings]:
    """The project this command works on and its settings; bad configuration is one line and exit 2."""
    from python419.project import ProjectError, load_project, project_settings
    from python419.settings import SettingsError

    try:
        project = load_project(flags)
        return project, project_settings(project)
    except (ProjectError, SettingsError) as exc:
        raise fail(str(exc), 2) from None


def exit_now(code: int) -> None:
    """Every child is gone and every file closed: skip the interpreter's teardown, which took 150 ms of the
    supervisor's exit (strace: no system call between releasing the lock and exit_group; module clean-up of
    rich, pydantic, httpx), a third of honcho's whole Ctrl+C time."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


def tolerant_streams() -> None:
    """Whatever p419 prints (a path, a product name from a child's line) must not crash it on a console whose
    code page cannot encode it (cp1252 on a Windows pipe): unencodable characters print as "?"."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")

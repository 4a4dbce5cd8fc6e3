"""`p419 up --reload`: restart the API and the workers when a .py file of the project changes.

p419 restarts the processes itself, on every OS: a worker gets a warm stop (the task in hand finishes), then
starts again on the new code; the API process is restarted the same way. (uvicorn's own reloader is not used:
on Windows it stops its server with CTRL_C_EVENT, which reaches the whole console and would stop the stack.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when --reload asks for it: 6 ms of every `p419 up` before its first child
    from watchfiles import PythonFilter

# Folders that hold no code of the project's, besides watchfiles' own list (.git, .venv, __pycache__, ...).
IGNORED_DIRS = ("venv", "env", ".env", ".p419", "build", "dist", "node_modules", ".tox", ".nox")
DEBOUNCE_MS = 300  # a save in an editor is often several writes: one restart for them


def reload_filter(ignore: Iterable[Path]) -> PythonFilter:
    from watchfiles import PythonFilter

    return PythonFilter(ignore_paths=[str(p) for p in ignore], extra_extensions=())


def describe_changes(paths: Iterable[str], root: Path, names: Iterable[str]) -> str:
    """One line: what changed and who restarts."""
    shown = []
    for path in sorted(set(paths)):
        try:
            shown.append(str(Path(path).relative_to(root)))
        except ValueError:
            shown.append(path)
    more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
    return f"{', '.join(shown[:3])}{more} changed: restarting {', '.join(names)}"


def start_reloader(
    folders: list[Path],
    ignore: list[Path],
    on_change: Callable[[list[str]], None],
    stop: threading.Event,
) -> threading.Thread:
    from watchfiles import watch

    watch_filter = reload_filter(ignore)
    watch_filter.ignore_dirs = (*watch_filter.ignore_dirs, *IGNORED_DIRS)

    def run() -> None:
        for changes in watch(
            *folders, watch_filter=watch_filter, debounce=DEBOUNCE_MS, stop_event=stop, raise_interrupt=False
        ):
            on_change([path for _, path in changes])

    thread = threading.Thread(target=run, name="p419-reload", daemon=True)
    thread.start()
    return thread

"""Turns the manager's events into lines: `name | text`, aligned and coloured, plus one log file per child."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.status import Status
from rich.text import Text

from python419.supervisor import events as ev

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")
SELF = "p419"


class Printer:
    def __init__(self, console: Console, names: list[str], log_dir: Path | None = None) -> None:
        self.console = console
        self.width = max(len(n) for n in [*names, SELF])
        self.styles = dict(zip(names, cycle(COLOURS)))
        self.styles[SELF] = "bold"
        self.log_dir = log_dir
        self._files: dict[str, IO[str]] = {}
        self._status: Status | None = None

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Output):
            self._log(event.name, event.line)
            self._line(event.name, event.line)
            return
        text, style = describe(event)
        if text is None:
            return
        if isinstance(event, ev.Started) and self._status is None and self.console.is_terminal:
            self._status = self.console.status("waiting for the stack to get ready…")
            self._status.start()
        if isinstance(event, ev.StackReady | ev.Failed | ev.Stopping):
            self._stop_spinner()
        self._line(SELF, text, style)
        if isinstance(event, ev.Failed):
            for line in event.tail:
                self._line(event.name, line)

    def close(self) -> None:
        self._stop_spinner()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _line(self, name: str, line: str, style: str | None = None) -> None:
        prefix = Text(f"{name.ljust(self.width)} | ", style=self.styles.get(name, "bold"))
        self.console.print(prefix + Text(line, style=style or ""), soft_wrap=True, highlight=False)

    def _log(self, name: str, line: str) -> None:
        if self.log_dir is None:
            return
        handle = self._files.get(name)
        if handle is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            handle = self._files[name] = (self.log_dir / f"{name}.log").open("a", encoding="utf-8")
        handle.write(line + "\n")
        handle.flush()


def describe(event: ev.Event) -> tuple[str | None, str | None]:
    """The supervisor's own line for an event, and its style."""
    match event:
        case ev.Started(name, pid):
            return f"started {name} (pid {pid})", None
        case ev.ChildReady(name, seconds):
            return f"{name} ready in {seconds:.2f}s", "green"
        case ev.StackReady(seconds, urls):
            return f"ready in {seconds:.2f}s: API {urls[0]}  docs {urls[1]}  (Ctrl+C to stop)", "bold green"
        case ev.Exited(name, code, expected):
            if expected:
                return f"{name} stopped (exit code {code})", None
            return f"{name} exited unexpectedly with code {code}", "red"
        case ev.Restarting(name, delay, failures):
            return f"restarting {name} in {delay:g}s (failure {failures} in a row)", "yellow"
        case ev.Failed(name, reason, tail):
            more = ", last lines:" if tail else ""
            return f"{name} {reason}{more}", "bold red"
        case ev.Stopping(reason, force):
            return (f"{reason}", "bold red") if force else (f"stopping: {reason}", "yellow")
        case ev.Note(text, loud):
            return text, "bold yellow" if loud else None
    return None, None

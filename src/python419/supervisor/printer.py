"""Turns the manager's events into lines: `name | text`, aligned and coloured, plus one log file per child
and `p419.log` for the supervisor's own lines.

Nothing here may stop the supervisor, whatever a child prints and whatever happens to stdout or the disk:
- a character the console's encoding cannot show (a cp1252 pipe on Windows, issue 10) is replaced by `?` on the
  console; the file logs are UTF-8 and keep it;
- stdout going away (`p419 up | tee log`, then Ctrl+C kills tee: EPIPE; a closed terminal: EIO; Windows: EINVAL)
  ends console output only. rich's default for EPIPE is `SystemExit(1)`, which skipped the whole stop sequence
  (issue 11); the file logs, `p419.log` included, go on;
- a log write that fails (ENOSPC on a full disk, a read-only folder: issue 12) turns the file logs off, said once
  on the console.

Cost per child line (scripts/bench --only idle): a child line is written to the console as one pre-styled string
and flushed once per burst (the manager's Drained event), not rendered by rich and flushed per line; rich still
draws the supervisor's own lines and anything while the start-up spinner is live.
"""

from __future__ import annotations

import contextlib
import os
import time
from itertools import cycle
from pathlib import Path
from typing import IO, TYPE_CHECKING

from python419.launch.contract import LOG_ONLY, SAYS
from python419.supervisor import events as ev

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status  # made by Console.status, on a terminal only
    from rich.text import Text

COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta", "bright_green")
SELF = "p419"


# What rich's strip_control_codes takes out of a line (bell, backspace, vertical tab, form feed, carriage
# return): a child's progress bar must not overwrite the prefixes.
_CONTROL_CODES = dict.fromkeys((7, 8, 11, 12, 13))


def strip_control_codes(text: str) -> str:
    return text.translate(_CONTROL_CODES)


class PlainConsole:
    """The console of a `p419 up` whose output is no terminal (a service's journal, a CI log, a pipe): rich
    would draw nothing there but the text, so the printer writes the text itself, and rich is not imported
    while the children start (12-18 ms of the supervisor's CPU then; docs/benchmarks.md, row 8)."""

    record = False
    legacy_windows = False
    is_terminal = False

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.quiet = False

    def on_broken_pipe(self) -> None:  # replaced by the printer, as on rich's Console
        pass


def printable(text: str, encoding: str) -> str:
    """`text` as a stream in `encoding` can take it: whatever it cannot encode (an emoji on cp1252, a lone
    surrogate anywhere) becomes `?`."""
    try:
        return text.encode(encoding, "replace").decode(encoding, "replace")
    except LookupError:  # an encoding Python does not know: ASCII is safe everywhere
        return text.encode("ascii", "replace").decode("ascii")


def stamp() -> str:
    """The time on each file-log line (the console stays as it is: a person watches it live)."""
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class FileLogs:
    """One append-only UTF-8 file per name under `log_dir`, buffered and flushed once per burst.

    The first OSError (a full disk, a read-only or vanished folder) turns every file log off for the rest of
    the run: `write`/`flush` return the one line that says so, once, and never raise.
    """

    def __init__(self, log_dir: Path | None) -> None:
        self.log_dir = log_dir
        self.failed = log_dir is None
        self._files: dict[str, IO[str]] = {}
        self._dirty: set[str] = set()

    def write(self, name: str, line: str, *, flush: bool = False) -> str | None:
        if self.failed:
            return None
        assert self.log_dir is not None
        try:
            handle = self._files.get(name)
            if handle is None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                path = self.log_dir / f"{name}.log"
                handle = self._files[name] = path.open("a", encoding="utf-8", errors="replace")
            handle.write(f"{stamp()} {line}\n")
            if flush:
                handle.flush()
            else:
                self._dirty.add(name)
        except OSError as exc:
            return self._fail(exc)
        return None

    def flush(self) -> str | None:
        if self.failed:
            return None
        try:
            for name in self._dirty:
                self._files[name].flush()
        except OSError as exc:
            return self._fail(exc)
        finally:
            self._dirty.clear()
        return None

    def close(self) -> None:
        for handle in self._files.values():
            with contextlib.suppress(OSError, ValueError):  # a flush that fails again on a full disk
                handle.close()
        self._files.clear()
        self._dirty.clear()

    def _fail(self, exc: OSError) -> str:
        self.failed = True
        self.close()
        reason = exc.strerror or str(exc)
        return f"file logs stopped: cannot write to {self.log_dir} ({reason}); the console still shows everything"


class Printer:
    def __init__(
        self, console: Console | PlainConsole, names: list[str], log_dir: Path | None = None
    ) -> None:
        self.console = console
        self._no_rich = isinstance(console, PlainConsole)
        self.width = max(len(n) for n in [*names, SELF])
        self.styles = dict(zip(names, cycle(COLOURS)))
        self.styles[SELF] = "bold"
        self.logs = FileLogs(log_dir)
        self.console_ok = True
        self._status: Status | None = None
        self._spun = False
        self._prefixes: dict[str, str] = {}
        self._unflushed = False
        self._said: set[str] = set()  # the launchers' verdicts shown so far
        # rich would raise SystemExit(1) from inside the manager's loop on EPIPE; we stop the console instead.
        console.on_broken_pipe = self._on_broken_pipe  # type: ignore[method-assign]
        # The plain-write path needs ANSI styles (legacy Windows consoles colour through the Win32 API) and
        # must not bypass a recording console (tests export what was printed).
        self._plain_ok = not console.record and not (console.legacy_windows and console.is_terminal)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.Output):
            line = event.line
            if line.startswith(LOG_ONLY):  # a traceback: its gist is the launcher's next line
                self._log(event.name, line[len(LOG_ONLY) :])
                return
            self._log(event.name, line)
            if line.startswith(SAYS):
                if line in self._said:  # another child with the same broken import: said once
                    return
                self._said.add(line)
            self._child_line(event.name, line)
            return
        if isinstance(event, ev.Drained):
            self._flush()
            return
        text, style = describe(event)
        if text is None:
            return
        self._log(SELF, text, flush=True)
        if isinstance(event, ev.Started) and self._status is None and not self._spun and self.console_ok:
            self._start_spinner()  # once: a child restarted later must not bring the start-up spinner back
        if isinstance(event, ev.StackReady | ev.Failed | ev.Stopping):
            self._stop_spinner()
        self._line(SELF, text, style)
        if isinstance(event, ev.Failed | ev.GaveUp):
            for line in event.tail:
                self._line(event.name, line)
        self._flush_console()

    def close(self) -> None:
        """Never raises: it runs in the supervisor's `finally`, before the state file is removed."""
        self._stop_spinner()
        self._flush_console()
        self.logs.close()

    # --- the console -----------------------------------------------------------------------------

    def _encoding(self) -> str:
        return getattr(self.console.file, "encoding", None) or "utf-8"

    def _start_spinner(self) -> None:
        try:
            self._spun = True
            if self.console.is_terminal and not isinstance(self.console, PlainConsole):
                text = printable("waiting for the stack to get ready…", self._encoding())
                self._status = self.console.status(text)
                self._status.start()
        except (OSError, ValueError) as exc:
            self._console_failed(exc)

    def _stop_spinner(self) -> None:
        status, self._status = self._status, None
        if status is not None:
            try:
                status.stop()
            except (OSError, ValueError) as exc:
                self._console_failed(exc)

    def _child_line(self, name: str, line: str) -> None:
        if not self.console_ok:
            return
        if not self._plain_ok or self._status is not None:
            self._line(name, line)
            return
        self._write(self._prefix(name) + strip_control_codes(line) + "\n")  # what rich's Text would show

    def _write(self, text: str) -> None:
        """Straight to the console's file, flushed once per burst (`_flush_console`)."""
        file = self.console.file
        try:
            try:
                file.write(text)
            except UnicodeEncodeError:
                file.write(printable(text, self._encoding()))
            self._unflushed = True
        except (OSError, ValueError) as exc:
            self._console_failed(exc)

    def _prefix(self, name: str) -> str:
        """`name | ` in the console's colours, rendered by rich once per name."""
        prefix = self._prefixes.get(name)
        if prefix is None and self._no_rich:
            prefix = self._prefixes[name] = f"{name.ljust(self.width)} | "
        if prefix is None:
            assert not isinstance(self.console, PlainConsole)
            with self.console.capture() as capture:
                self.console.print(self._prefix_text(name), end="", soft_wrap=True, highlight=False)
            prefix = self._prefixes[name] = capture.get()
        return prefix

    def _prefix_text(self, name: str) -> Text:
        from rich.text import Text

        return Text(f"{name.ljust(self.width)} | ", style=self.styles.get(name, "bold"))

    def _line(self, name: str, line: str, style: str | None = None) -> None:
        if not self.console_ok:
            return
        if self._no_rich:
            self._write(self._prefix(name) + printable(line, self._encoding()) + "\n")
            return
        from rich.text import Text

        assert not isinstance(self.console, PlainConsole)
        # Only the prefix takes the child's colour (as honcho and docker compose do), on both paths.
        text = Text.assemble(
            self._prefix_text(name), Text(printable(line, self._encoding()), style=style or "")
        )
        try:
            self.console.print(text, soft_wrap=True, highlight=False)
        except (OSError, ValueError, UnicodeError) as exc:  # EPIPE comes through _on_broken_pipe instead
            self._console_failed(exc)

    def _flush_console(self) -> None:
        if self._unflushed and self.console_ok:
            self._unflushed = False
            try:
                self.console.file.flush()
            except (OSError, ValueError) as exc:
                self._console_failed(exc)

    def _on_broken_pipe(self) -> None:
        self._console_failed(BrokenPipeError(32, "Broken pipe"))

    def _console_failed(self, exc: BaseException) -> None:
        if not self.console_ok:
            return
        self.console_ok = False
        self.console.quiet = True  # rich's own writers (the spinner's thread) go quiet too
        _silence(self.console.file)
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        self._log(SELF, f"console output stopped ({reason}); the file logs go on", flush=True)

    # --- the file logs ---------------------------------------------------------------------------

    def _log(self, name: str, line: str, *, flush: bool = False) -> None:
        failure = self.logs.write(name, line, flush=flush)
        if failure:
            self._line(SELF, failure, "bold yellow")

    def _flush(self) -> None:
        self._flush_console()
        failure = self.logs.flush()
        if failure:
            self._line(SELF, failure, "bold yellow")
            self._flush_console()


def _silence(file: IO[str]) -> None:
    """Point a dead console's descriptor at the null device, so what is still buffered, and the interpreter's
    own flush at exit, go nowhere instead of failing again (and turning our exit code into 120)."""
    try:
        fd = file.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):  # io.StringIO, an already closed file
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


def describe(event: ev.Event) -> tuple[str | None, str | None]:
    """The supervisor's own line for an event, and its style."""
    match event:
        case ev.Started(name, pid):
            return f"started {name} (pid {pid})", None
        case ev.ChildReady(name, seconds, warning) if warning:
            return f"{name} ready in {seconds:.2f}s, but {warning}", "yellow"
        case ev.ChildReady(name, seconds):
            return f"{name} ready in {seconds:.2f}s", "green"
        case ev.StackReady(seconds, urls):
            where = f": API {urls[0]}  docs {urls[1]} " if urls else ": no API configured (workers only)"
            return f"ready in {seconds:.2f}s{where} (Ctrl+C to stop)", "bold green"
        case ev.Exited(name, code, expected, clean, killed):
            if not expected:
                return f"{name} exited unexpectedly with code {code}", "red"
            if killed:
                return f"{name} killed", "yellow"
            if clean:
                return f"{name} stopped", None
            return f"{name} stopped with exit code {code}", "yellow"
        case ev.Restarting(name, delay, failures):
            return f"restarting {name} in {delay:g}s (failure {failures} in a row)", "yellow"
        case ev.Failed(name, reason, tail):
            more = ", last lines:" if tail else ""
            return f"{name} {reason}{more}", "bold red"
        case ev.StepDone(name, seconds):
            return f"step {name} done in {seconds:.2f}s", "green"
        case ev.GaveUp(name, reason, tail):
            more = ", last lines:" if tail else ""
            return f"{name} {reason}{more}", "bold red"
        case ev.Stopping(reason, force):
            return (f"{reason}", "bold red") if force else (f"stopping: {reason}", "yellow")
        case ev.Stopped(seconds, killed, forced):
            if not killed:
                return f"stopped in {seconds:.2f}s", "green"
            why = "after the second interrupt" if forced else "after the grace period"
            return f"stopped in {seconds:.2f}s; killed {why}: {', '.join(killed)}", "yellow"
        case ev.Note(text, loud):
            return text, "bold yellow" if loud else None
    return None, None

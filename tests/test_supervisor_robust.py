"""The supervisor survives what its children print and what stdout and the disk do, and leaves no child behind.

Real pipes, real files, a real full tmpfs (root only; skipped with the reason otherwise), real processes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from python419.supervisor import events as ev
from python419.supervisor.printer import Printer

# --- helpers ----------------------------------------------------------------------------------


class PipeConsole:
    """A rich Console writing to the write end of a real pipe whose read end we hold."""

    def __init__(self, encoding: str = "utf-8", *, read: bool = True) -> None:
        self.read_fd, write_fd = os.pipe()
        self.stream = io.TextIOWrapper(io.FileIO(write_fd, "w"), encoding=encoding, errors="strict")
        self.console = Console(file=self.stream, force_terminal=False, color_system=None, width=200)
        self.chunks: list[bytes] = []
        self._reader: threading.Thread | None = None
        if read:
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()

    def _read(self) -> None:
        while chunk := os.read(self.read_fd, 65536):
            self.chunks.append(chunk)

    def text(self, encoding: str) -> str:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()
        with contextlib.suppress(OSError, ValueError):
            self.stream.close()
        if self._reader is not None:
            self._reader.join(5)
        return b"".join(self.chunks).decode(encoding)

    def close_reader(self) -> None:
        """What `| tee` does when Ctrl+C kills it: the read end goes away, writes fail with EPIPE."""
        os.close(self.read_fd)


@contextlib.contextmanager
def full_tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    """A real tmpfs of `size`, filled to the last byte. Needs root (mount); skips with the reason otherwise."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")
    try:
        (where / "logs").mkdir()
        with (where / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# --- 1. any character on any code page (issue 10) -----------------------------------------------


def test_a_cp1252_pipe_gets_every_line_with_unencodable_characters_replaced(tmp_path: Path) -> None:
    pipe = PipeConsole("cp1252")
    printer = Printer(pipe.console, ["api", "worker1"], tmp_path / "logs")
    printer.handle(ev.Output("worker1", "Sending 'New product 🆕 café'"))
    printer.handle(ev.Note("a note with 🆕 in it"))
    printer.handle(ev.Failed("api", "crashed 🆕", ("last line 🆕", "lone surrogate \udcff")))
    printer.handle(ev.Output("api", "after the emoji"))
    printer.close()
    lines = pipe.text("cp1252").splitlines()
    assert lines == [
        "worker1 | Sending 'New product ? café'",
        "p419    | a note with ? in it",
        "p419    | api crashed ?, last lines:",
        "api     | last line ?",
        "api     | lone surrogate ?",
        "api     | after the emoji",
    ]
    # the file log keeps the real character (UTF-8)
    assert (tmp_path / "logs" / "worker1.log").read_text(
        encoding="utf-8"
    ) == "Sending 'New product 🆕 café'\n"


# --- 2. stdout goes away (issue 11: `p419 up | tee log`, Ctrl+C) --------------------------------


def test_a_closed_stdout_pipe_stops_console_output_and_keeps_the_file_logs(tmp_path: Path) -> None:
    pipe = PipeConsole(read=False)
    printer = Printer(pipe.console, ["api", "worker1"], tmp_path / "logs")
    printer.handle(ev.Output("api", "before"))
    printer.handle(ev.Drained())
    pipe.close_reader()
    # rich turns EPIPE into SystemExit(1) by default: none of these may raise anything
    printer.handle(ev.Stopping("received SIGINT"))
    for n in range(2000):  # more than any pipe or stream buffer holds
        printer.handle(ev.Output("worker1", f"line {n}"))
    printer.handle(ev.Drained())
    printer.handle(ev.Exited("worker1", 0, expected=True))
    printer.close()
    worker_log = (tmp_path / "logs" / "worker1.log").read_text().splitlines()
    assert worker_log == [f"line {n}" for n in range(2000)]
    own = (tmp_path / "logs" / "p419.log").read_text()
    assert "stopping: received SIGINT" in own and "console output stopped" in own
    assert "worker1 stopped" in own


# --- 3. a full disk (issue 12 item 6) -----------------------------------------------------------


def test_a_full_disk_degrades_the_file_log_once_and_the_printer_goes_on(tmp_path: Path) -> None:
    with full_tmpfs(tmp_path / "disk") as disk:
        pipe = PipeConsole()
        printer = Printer(pipe.console, ["api", "worker1"], disk / "logs")
        for n in range(3000):  # ~100 KB: far past any write buffer
            printer.handle(ev.Output("worker1", f"worker line {n} " + "x" * 20))
            if n % 4 == 3:
                printer.handle(ev.Drained())
        printer.handle(ev.Output("api", "still here"))
        printer.close()  # must not raise either
        printer.close()
        lines = pipe.text("utf-8").splitlines()
    notes = [line for line in lines if "file logs" in line]
    assert len(notes) == 1, notes
    assert notes[0].startswith("p419    | ") and "No space left on device" in notes[0]
    assert lines[-1] == "api     | still here"
    assert sum(1 for line in lines if line.startswith("worker1 | ")) == 3000

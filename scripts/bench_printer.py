#!/usr/bin/env python3
"""Supervisor CPU per child line: what `p419 up` spends to show one line on the console and log it to a file.

The console is a real pipe (drained by a thread, as a terminal or `| tee` would), the log files live in a real
temporary directory. Lines arrive in bursts like a worker's log of one message (4 lines), and the burst ends
the way the manager ends one (a Drained event, when the printer has it). CPU is process time (user+system)
of this whole process, so the draining thread's reads count against us too: an upper bound.

    .venv/bin/python scripts/bench_printer.py [--lines 20000] [--terminal]

Goal (issue 11): <= 0.5 ms per line.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from python419.supervisor import events as ev
from python419.supervisor.printer import Printer

LINE = (
    "[2026-11-26 13:00:00,000: INFO/MainProcess] Task python419.tasks.notify_new_product"
    "[0f6c1a2e-8a51-4a62-9f0c-1c4f5e6a7b8c] succeeded in 0.0123s: {'status': 'success'} 🆕"
)


def drain(fd: int) -> None:
    while os.read(fd, 65536):
        pass


def one_run(lines: int, terminal: bool) -> float:
    read_fd, write_fd = os.pipe()
    threading.Thread(target=drain, args=(read_fd,), daemon=True).start()
    stream = io.TextIOWrapper(io.FileIO(write_fd, "w"), encoding="utf-8", errors="strict")
    console = Console(file=stream, force_terminal=terminal, color_system="truecolor" if terminal else None)
    with tempfile.TemporaryDirectory() as tmp:
        printer = Printer(console, ["redis", "api", "worker1"], Path(tmp))
        drained = getattr(ev, "Drained", None)
        start = time.process_time()
        for n in range(lines):
            printer.handle(ev.Output("worker1", LINE))
            if drained is not None and n % 4 == 3:
                printer.handle(drained())
        printer.close()
        spent = time.process_time() - start
    stream.close()
    return spent / lines * 1000


def through_the_manager(lines: int) -> float:
    """The whole path of a line in `p419 up`: a real child writes it to its pipe, the pump thread reads and
    decodes it, the manager takes it off the queue and the printer shows and logs it. Returns the
    supervisor's CPU (this process) in ms per line, net of a run where the child prints nothing."""
    return (_manager_cpu(lines) - _manager_cpu(0)) / lines * 1000


def _manager_cpu(lines: int) -> float:
    import queue

    from python419.platforms import detect_platform
    from python419.supervisor.manager import Manager
    from python419.supervisor.plan import ChildSpec
    from python419.supervisor.process import ProcessFactory

    code = f"import sys\nline = {LINE!r}\nfor _ in range({lines}): print(line)\nsys.stdout.flush()\n"
    code += "import time\ntime.sleep(60)\n"
    spec = ChildSpec("worker1", "worker", [sys.executable, "-c", code])
    read_fd, write_fd = os.pipe()
    threading.Thread(target=drain, args=(read_fd,), daemon=True).start()
    stream = io.TextIOWrapper(io.FileIO(write_fd, "w"), encoding="utf-8", errors="strict")
    console = Console(file=stream, force_terminal=False, color_system=None)
    platform = detect_platform()
    with tempfile.TemporaryDirectory() as tmp:
        # All the manager reads of a plan: its children and the API's URL (independent of Plan's other fields).
        plan = SimpleNamespace(children=[spec], api_url="http://127.0.0.1:9")
        printer = Printer(console, ["worker1"], Path(tmp) / "logs")
        seen = [0]

        def emit(event: ev.Event) -> None:
            if isinstance(event, ev.Output):
                seen[0] += 1
            printer.handle(event)

        lines_q: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        factory = ProcessFactory(platform, dict(os.environ), lambda n, line: lines_q.put((n, line)), None)
        manager = Manager(
            plan,  # type: ignore[arg-type]
            factory,
            lambda spec: True,
            emit,
            lines=lines_q,
            stop_requested=lambda: seen[0] >= lines,
            grace=5,
        )
        start = time.process_time()
        manager.run()
        spent = time.process_time() - start
        printer.close()
    stream.close()
    return spent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--terminal", action="store_true", help="a colour terminal instead of a plain pipe")
    parser.add_argument(
        "--manager", action="store_true", help="the whole path: child, pump, manager, printer"
    )
    args = parser.parse_args()
    if args.manager:
        results = [through_the_manager(args.lines) for _ in range(args.runs)]
        print(
            f"child -> pump -> manager -> printer: ms of supervisor CPU per line over {args.lines} lines: "
            f"min {min(results):.4f}  median {statistics.median(results):.4f}  (goal <= 0.5)"
        )
        return 0
    results = [one_run(args.lines, args.terminal) for _ in range(args.runs)]
    print(
        f"printer, {'terminal' if args.terminal else 'pipe'}: ms of CPU per line over {args.lines} lines: "
        f"min {min(results):.4f}  median {statistics.median(results):.4f}  (goal <= 0.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

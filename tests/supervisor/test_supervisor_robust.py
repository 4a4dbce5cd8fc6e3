"""The supervisor survives what its children print and what stdout and the disk do, and leaves no child behind.

Real pipes, real files, a real full tmpfs (root only; skipped with the reason otherwise), real processes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis
from rich.console import Console

from python419.platforms import stop_exit_code, stopped_cleanly
from python419.runfiles import read_state
from python419.supervisor import events as ev
from python419.supervisor.manager import IDLE_POLL, Manager
from python419.supervisor.orphans import pdeathsig_for
from python419.supervisor.plan import ChildSpec
from python419.supervisor.printer import Printer, describe
from python419.supervisor.state import UpLock, lock_method
from tests.conftest import clean_environ, stack_env
from tests.fake_telegram import FakeTelegram
from tests.procs import all_gone, free_port, guarded_by_a_stand_in, kill_all, kill_tree, wait_until
from tests.unit.test_supervisor_unit import FakeChild, World


def unstamped(text: str) -> list[str]:
    """A file log's lines without the time each one starts with."""
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
    lines = text.splitlines()
    assert all(stamp.match(line) for line in lines), lines[:3]
    return [stamp.sub("", line) for line in lines]


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
            os.close(self.read_fd)
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
    assert unstamped((tmp_path / "logs" / "worker1.log").read_text(encoding="utf-8")) == [
        "Sending 'New product 🆕 café'"
    ]


@pytest.mark.parametrize("terminal", [True, False])
def test_the_plain_write_path_shows_what_rich_would(terminal: bool) -> None:
    """Child lines skip rich's renderer (per-line cost, issue 11); what reaches the console is the same."""
    lines = [
        "plain",
        "[bold]not markup[/bold] :smile:",
        "bell\x07 and cr\r",
        "\x1b[31mred from the child",
        "🆕 ok",
    ]
    outputs = []
    for plain in (True, False):
        stream = io.StringIO()
        console = Console(file=stream, force_terminal=terminal, color_system="standard" if terminal else None)
        printer = Printer(console, ["api", "worker1"])
        printer._plain_ok = plain
        for line in lines:
            printer.handle(ev.Output("worker1", line))
        printer.handle(ev.Drained())
        outputs.append(stream.getvalue())
    assert outputs[0] == outputs[1]
    assert outputs[0].count("\n") == len(lines)


def test_a_child_restarted_after_ready_does_not_bring_the_spinner_back() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, color_system=None, width=200)
    printer = Printer(console, ["api", "worker1"])
    printer.handle(ev.Started("api", 1))
    printer.handle(ev.StackReady(0.5, ("http://a", "http://a/docs")))
    printer.handle(ev.Exited("api", -9, expected=False))
    printer.handle(ev.Started("api", 2))
    printer.handle(ev.Output("api", "back"))
    printer.handle(ev.Drained())
    tail = stream.getvalue().split("started api (pid 2)", 1)[1]
    assert "waiting for the stack" not in tail and tail.endswith("api     | back\n")
    printer.close()


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
    worker_log = unstamped((tmp_path / "logs" / "worker1.log").read_text())
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


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this OS")
def test_enospc_without_root_from_dev_full(tmp_path: Path) -> None:
    """Where no tmpfs can be mounted: /dev/full is a real device whose writes fail with ENOSPC."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "worker1.log").symlink_to("/dev/full")
    stream = io.StringIO()
    printer = Printer(Console(file=stream, color_system=None, width=300), ["api", "worker1"], logs)
    printer.handle(ev.Output("worker1", "a line the disk cannot take"))
    printer.handle(ev.Drained())
    printer.handle(ev.Output("api", "the console goes on"))
    printer.handle(ev.Drained())
    printer.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "worker1 | a line the disk cannot take"
    assert "file logs stopped" in lines[1] and "No space left on device" in lines[1]
    assert lines[2:] == ["api     | the console goes on"]
    assert not (logs / "api.log").exists(), "file logs stay off once the disk said no"


# --- the manager: stop sequence, wake-ups, reporting (issue 11) ----------------------------------


class SlowDeathChild(FakeChild):
    """Like a real process: after SIGKILL its exit status comes back a moment later; after our SIGTERM it
    exits with the status its program chooses (uvicorn re-raises SIGTERM: -15)."""

    def __init__(self, spec: ChildSpec, world: World) -> None:
        super().__init__(spec, world)
        self.killed_at: float | None = None

    def poll(self) -> int | None:
        if self.killed_at is not None and self.code is None and self.world.clock.now >= self.killed_at + 0.1:
            self.code = -9
        code = super().poll()
        if code == 0 and self.spec.name in STOP_CODES:
            self.code = code = STOP_CODES[self.spec.name]
        return code

    def kill_tree(self) -> None:
        if self.code is None and self.killed_at is None:
            self.world.log.append(("kill", self.spec.name, self.world.clock.now))
            self.killed_at = self.world.clock.now


STOP_CODES = {"api": -15, "redis": 0, "worker2": 3}


class SlowDeathWorld(World):
    def new_child(self, spec: ChildSpec) -> FakeChild:
        return SlowDeathChild(spec, self)


def test_a_double_interrupt_reports_the_whole_stop(tmp_path: Path) -> None:
    world = SlowDeathWorld(ignores_stop={"worker1"})
    manager = world.manager(tmp_path, grace=60.0)
    original_sleep = world.clock.sleep

    def sleep(seconds: float) -> None:
        original_sleep(seconds)
        if manager.stack_ready:
            manager.request_stop("received SIGINT", 130)
            if any(kind == "stop" for kind, *_ in world.log):
                manager.request_stop("received SIGINT", 130)

    manager.sleep = sleep
    assert manager.run() == 130
    exits = {e.name: e for e in world.of(ev.Exited)}
    assert sorted(exits) == ["api", "redis", "worker1", "worker2"]
    assert len(world.of(ev.Exited)) == 4, "each child is reported exactly once"
    assert exits["worker1"].killed and exits["worker1"].code == -9
    assert exits["api"].clean and not exits["api"].killed, "died of our SIGTERM: a clean stop"
    assert exits["worker2"].code == 3 and not exits["worker2"].clean
    [stopped] = world.of(ev.Stopped)
    assert stopped.forced and stopped.killed == ("worker1",)
    assert world.events[-1] == stopped, "the report closes the stop"
    words = [describe(e)[0] for e in world.events if isinstance(e, ev.Exited | ev.Stopped)]
    assert "api stopped" in words and "api stopped (exit code -15)" not in words
    assert "worker1 killed" in words and "worker2 stopped with exit code 3" in words
    assert any(w and w.endswith("killed after the second interrupt: worker1") for w in words)


def test_exit_codes_for_each_way_of_asking_a_stop() -> None:
    assert stop_exit_code("SIGINT") == 130
    assert stop_exit_code("SIGHUP") == 129
    assert stop_exit_code("SIGTERM") == 0 and stop_exit_code("SIGBREAK") == 0
    assert stop_exit_code(None) == 0  # p419 down
    assert stopped_cleanly(0) and stopped_cleanly(-15) and stopped_cleanly(143)
    assert stopped_cleanly(0xC000013A)  # Windows: a console program ended by CTRL_BREAK
    assert not stopped_cleanly(1) and not stopped_cleanly(-9) and not stopped_cleanly(None)


def test_an_idle_stack_wakes_the_supervisor_a_few_times_a_second(tmp_path: Path) -> None:
    world = World()
    manager = world.manager(tmp_path)
    waits_when_ready: list[float] = []
    original_sleep = world.clock.sleep

    def sleep(seconds: float) -> None:
        if manager.stack_ready:
            waits_when_ready.append(world.clock.now)
        original_sleep(seconds)

    manager.sleep = sleep
    manager.stop_requested = lambda: world.clock.now >= 60.0
    assert manager.run() == 0
    idle = [t for t in waits_when_ready if t < 60.0]  # not the waits of the stop sequence
    per_second = len(idle) / (60.0 - idle[0])
    assert per_second <= 1 / IDLE_POLL + 0.1, f"{per_second:.1f} wake-ups a second (the 50 ms tick: 20)"
    assert IDLE_POLL <= 0.5, "a child's exit, `p419 down` and (Windows) Ctrl+C are noticed within IDLE_POLL"


def test_a_blocked_wait_returns_at_once_on_a_line_or_a_stop(tmp_path: Path) -> None:
    """Real clock and queue: the loop sleeps in the queue, not in a tick; a stop request wakes it."""
    world = World()
    plan = world.manager(tmp_path).plan
    manager = Manager(
        plan, world.factory, world.probe, world.events.append, lines=world.lines, idle_poll=30.0
    )
    threading.Timer(0.3, manager.lines.put, args=(("api", "a line while idle"),)).start()
    threading.Timer(0.6, manager.request_stop, args=("received SIGTERM", 0)).start()
    began = time.monotonic()
    assert manager.run() == 0
    assert time.monotonic() - began < 15, "the stop request must wake the loop, not wait out idle_poll"
    assert ev.Output("api", "a line while idle") in world.events
    assert manager.wake_ups < 30, manager.wake_ups


def test_a_listener_that_raises_cannot_skip_the_stop_sequence(tmp_path: Path) -> None:
    world = World()

    def emit(event: ev.Event) -> None:
        world.events.append(event)
        if isinstance(event, ev.StackReady | ev.Stopping):
            raise SystemError("a printer bug")

    plan = world.manager(tmp_path).plan
    manager = Manager(
        plan, world.factory, world.probe, emit, lines=world.lines, clock=world.clock, sleep=world.clock.sleep
    )
    manager.stop_requested = lambda: manager.stack_ready
    with pytest.raises(SystemError, match="a printer bug"):
        manager.run()
    stops = [name for kind, name, _ in world.log if kind == "stop"]
    assert sorted(stops[:3]) == ["api", "worker1", "worker2"] and stops[3:] == ["redis"]
    assert len(world.of(ev.Exited)) == 4 and world.of(ev.Stopped)


def test_a_stop_that_fails_half_way_still_kills_every_child(tmp_path: Path) -> None:
    world = World()

    class BrokenStop(FakeChild):
        def stop(self) -> None:
            raise RuntimeError("stop failed")

    def factory(spec: ChildSpec) -> FakeChild:
        child = BrokenStop(spec, world) if spec.name == "api" else world.factory(spec)
        world.children.setdefault(spec.name, []).append(child)
        return child

    plan = world.manager(tmp_path).plan
    manager = Manager(
        plan,
        factory,
        world.probe,
        world.events.append,
        lines=world.lines,
        clock=world.clock,
        sleep=world.clock.sleep,
    )
    manager.stop_requested = lambda: manager.stack_ready
    with pytest.raises(RuntimeError, match="stop failed"):
        manager.run()
    assert all(children[-1].code is not None for children in world.children.values())


# --- real `p419 up` ---------------------------------------------------------------------------


STACK_READY = "p419    | ready in"  # the whole stack; "redis ready in" is one child


class PipedUp:
    """`p419 up` with its stdout on a pipe we hold (as `| tee` would), stderr in a file."""

    def __init__(
        self, tmp_path: Path, telegram: FakeTelegram, *args: str, data_dir: Path | None = None, **env: str
    ) -> None:
        self.data_dir = data_dir or tmp_path / "data"
        self.api_port = free_port()
        redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.env = stack_env(
            redis_url, self.data_dir, telegram, **{"P419_API_PORT": str(self.api_port), **env}
        )
        self.stderr = tmp_path / f"up-{self.api_port}.stderr"  # one per up: two may run in one test
        with self.stderr.open("wb") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "python419", "up", *args],
                env=self.env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=handle,
            )
        self.seen: list[str] = []

    def read_until(self, text: str, timeout: float = 40) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for raw in self.proc.stdout:
            self.seen.append(raw.decode("utf-8", "replace"))
            if text in self.seen[-1]:
                return
            assert time.monotonic() < deadline, "".join(self.seen)[-3000:]
        raise AssertionError(f"{text!r} never came:\n{''.join(self.seen)[-3000:]}\n{self.stderr.read_text()}")

    def keep_draining(self) -> None:
        """Read stdout from now on in the background, so the supervisor never blocks on a full pipe."""
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        threading.Thread(
            target=lambda: [self.seen.append(line.decode()) for line in stream], daemon=True
        ).start()

    def state(self) -> dict:
        return json.loads((self.data_dir / "run" / "up.json").read_text())

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
        self.proc.wait(10)


@pytest.fixture
def piped_up(tmp_path: Path, telegram: FakeTelegram) -> Iterator:
    started: list[PipedUp] = []

    def make(*args: str, **kw: Any) -> PipedUp:
        started.append(PipedUp(tmp_path, telegram, *args, **kw))
        return started[-1]

    yield make
    for up in started:
        up.cleanup()


def test_up_piped_to_tee_then_ctrl_c_runs_the_whole_stop_sequence(piped_up) -> None:
    up = piped_up("--broker", "embedded", "--workers", "1", "--pool", "solo", "--grace", "8")
    up.read_until(STACK_READY)
    kids = up.descendants()
    assert up.proc.stdout is not None
    up.proc.stdout.close()  # tee died with the Ctrl+C: the pipe has no reader any more
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(30) == 130, up.stderr.read_text()
    own = up.log("p419")
    assert "stopping: received SIGINT" in own and "console output stopped (Broken pipe)" in own, own
    assert "worker1 stopped" in own and "api stopped" in own and "stopped in" in own, own
    assert "Warm shutdown" in up.log("worker1"), "the worker was asked to stop, not left to its pdeathsig"
    assert not (up.data_dir / "run" / "up.json").exists()
    assert wait_until(lambda: all_gone(kids), 10)
    assert "Traceback" not in up.stderr.read_text() and "Exception ignored" not in up.stderr.read_text()


def test_a_double_ctrl_c_during_a_task_reports_every_child(piped_up, telegram: FakeTelegram) -> None:
    """Issue 11: a second Ctrl+C reported only part of the stop. A worker stuck in a send (the fake Bot API
    holds the request) makes the first Ctrl+C wait; the second kills, and every child is still reported."""
    up = piped_up(
        "--workers", "1", "--pool", "solo", "--grace", "60", TELEGRAM_TIMEOUT="30", P419_LEASE_SECONDS="100"
    )
    up.read_until(STACK_READY)
    up.keep_draining()
    kids = up.descendants()
    marker = f"hang-{free_port()}"
    telegram.script(marker, ["hang"])
    posted = httpx.post(
        f"http://127.0.0.1:{up.api_port}/products", json={"name": marker, "price": 1}, timeout=10
    )
    assert posted.status_code == 201, posted.text
    assert telegram.wait_for(lambda: telegram.attempts(marker), 20), "the worker never reached the Bot API"
    up.proc.send_signal(signal.SIGINT)
    assert wait_until(lambda: any("stopping: received SIGINT" in line for line in up.seen), 10)
    time.sleep(1.0)
    assert up.proc.poll() is None, "a warm stop waits for the task in flight"
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(20) == 130
    own = [line.split("| ", 1)[1].strip() for line in up.seen if line.startswith("p419    | ")]
    after = own[own.index("stopping: received SIGINT") :]
    for name in ("worker1", "api", "redis"):
        reports = [
            line for line in after if line.split()[0] == name and ("stopped" in line or "killed" in line)
        ]
        assert len(reports) == 1, (name, after)
    assert "worker1 killed" in after and "second interrupt: killing now" in after
    [summary] = [line for line in after if line.startswith("stopped in ")]
    assert "killed after the second interrupt: " in summary and "worker1" in summary
    assert after[-1] == summary
    assert wait_until(lambda: all_gone(kids), 10)


# --- 4. no child outlives the supervisor (issue 12 item 6) ------------------------------------------

REDIS_SERVER = shutil.which("redis-server")


def redis_that_cannot_save(tmp_path: Path, port: int) -> list[str]:
    """A real redis-server that will ignore SIGTERM: its --dir is deleted once it runs, so the RDB snapshot
    it takes before exiting fails ("Error trying to save the DB, can't exit"), as on a full disk."""
    assert REDIS_SERVER, "redis-server is needed (scripts/test installs it)"
    (tmp_path / "redis").mkdir()
    return [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path / "redis")]


def test_only_our_python_children_get_a_parent_death_sigterm() -> None:
    assert pdeathsig_for(True) == signal.SIGTERM  # the launcher's children: warm stop, watchdog escalates
    assert pdeathsig_for(False) == signal.SIGKILL  # redis-server, api_command: may ignore SIGTERM


def test_a_child_that_ignores_sigterm_dies_with_a_supervisor_killed_hard(tmp_path: Path) -> None:
    """A stand-in supervisor starts children with the real ProcessFactory, then is killed with -9."""
    port = free_port()
    argv = redis_that_cannot_save(tmp_path, port)
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from pathlib import Path
        from python419.supervisor.plan import ChildSpec
        from python419.supervisor.process import ProcessFactory
        from tests.plans import plan_for

        plan = plan_for("linux", Path({str(tmp_path)!r}))
        factory = ProcessFactory(plan, dict(os.environ), lambda n, line: None, None)
        redis = factory(ChildSpec("redis", "redis", {argv!r}))
        stubborn = factory(ChildSpec("redis", "redis", ["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"]))
        print(redis.pid, stubborn.pid, flush=True)
        time.sleep(120)
        """
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    pids = [int(pid) for pid in supervisor.stdout.readline().split()]
    kids = [psutil.Process(pid) for pid in pids]
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    assert wait_until(client.ping, 10)
    shutil.rmtree(tmp_path / "redis")
    # the precondition, checked for real: SIGTERM does not end this redis-server
    os.kill(pids[0], signal.SIGTERM)
    time.sleep(0.5)
    assert kids[0].is_running() and kids[0].status() != psutil.STATUS_ZOMBIE and client.ping()
    try:
        supervisor.kill()
        supervisor.wait(5)
        assert wait_until(lambda: all_gone(kids), 10), [p.cmdline() for p in kids if p.is_running()]
    finally:
        kill_all(kids)


def test_up_killed_hard_leaves_no_redis_even_when_redis_cannot_save(piped_up, tmp_path: Path) -> None:
    up = piped_up("--workers", "1", "--pool", "solo", "--grace", "3")
    up.read_until(STACK_READY)
    up.keep_draining()
    kids = up.descendants()
    redis_pid = up.state()["children"]["redis"]["pid"]
    assert psutil.Process(redis_pid).name().startswith("redis-server")
    shutil.rmtree(up.data_dir / "redis")  # from now on it cannot save, so it ignores SIGTERM
    up.proc.kill()
    up.proc.wait(5)
    assert wait_until(lambda: all_gone(kids), 15), [p.cmdline() for p in kids if p.is_running()]


def test_the_guard_kills_a_command_that_ignores_sigterm_when_the_supervisor_dies(tmp_path: Path) -> None:
    """macOS has no parent-death signal: redis runs under the guard, whose watchdog must escalate to SIGKILL."""
    supervisor, *pids = guarded_by_a_stand_in(["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"])
    kids = [psutil.Process(pid) for pid in pids]
    try:
        supervisor.kill()
        supervisor.wait(5)
        assert wait_until(lambda: all_gone(kids), 20), [p.cmdline() for p in kids if p.is_running()]
    finally:
        kill_all(kids)


# --- 5. one `up` per data dir; bad state files (issue 12 items 9, 10) --------------------------------

LOCKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from python419.platforms import detect_platform
    from python419.supervisor.state import AlreadyRunning, UpLock

    run_dir, go = Path(sys.argv[1]), Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    try:
        lock = UpLock(run_dir, detect_platform()).acquire()
    except AlreadyRunning as exc:
        print("lost:", exc, flush=True)
        sys.exit(1)
    print("won", flush=True)
    time.sleep(60)
    """
)


def test_the_lock_is_flock_on_posix_and_lockfile_on_windows() -> None:
    assert [lock_method(p) for p in ("linux", "macos", "windows")] == ["flock", "flock", "msvcrt"]  # type: ignore[arg-type]


def test_the_lock_lets_exactly_one_of_several_simultaneous_ups_through(tmp_path: Path) -> None:
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(tmp_path / "run"), str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    try:
        time.sleep(0.5)  # all four are waiting for the same moment
        go.touch()
        answers = [r.stdout.readline().strip() for r in racers if r.stdout]
        assert sorted(a.split(":")[0] for a in answers) == ["lost", "lost", "lost", "won"], answers
        [winner] = [r for r, a in zip(racers, answers, strict=True) if a == "won"]
        assert all(f"(pid {winner.pid})" in a for a in answers if a.startswith("lost"))
        winner.kill()  # killed hard: the OS releases the lock, no stale lock to clean up
        winner.wait(5)
        with UpLock(tmp_path / "run", "linux") as lock:
            assert lock.fd is not None
    finally:
        for r in racers:
            r.kill()
            r.wait(5)


def test_two_ups_on_one_data_dir_at_the_same_moment_only_one_runs(piped_up, tmp_path: Path) -> None:
    args = ("--broker", "embedded", "--workers", "1", "--pool", "solo", "--grace", "5")
    first, second = piped_up(*args), piped_up(*args, data_dir=tmp_path / "data")
    assert first.data_dir == second.data_dir and first.api_port != second.api_port
    assert wait_until(lambda: any(up.proc.poll() is not None for up in (first, second)), 20)
    [loser] = [up for up in (first, second) if up.proc.poll() is not None]
    [winner] = [up for up in (first, second) if up is not loser]
    assert loser.proc.returncode == 1
    message = loser.stderr.read_text()
    assert f"already running for {loser.data_dir}" in message and "Traceback" not in message
    winner.read_until(STACK_READY)
    winner.keep_draining()
    assert winner.proc.poll() is None, "exactly one of them refuses to start"
    assert winner.state()["pid"] == winner.proc.pid
    winner.proc.send_signal(signal.SIGTERM)
    assert winner.proc.wait(30) == 0  # SIGTERM (a service manager, `p419 down`): exit 0


def p419(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "python419", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_read_only_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(data)], capture_output=True, text=True
    )
    if done.returncode != 0:
        if os.geteuid() == 0:
            pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.strip()}")
        data.chmod(0o555)  # not root: permissions make it read-only
    try:
        env = {**clean_environ(), "P419_DATA_DIR": str(data), "P419_API_PORT": str(free_port())}
        up = p419(env, "up", "--broker", "embedded", "--pool", "solo")
        assert up.returncode == 1
        assert "Traceback" not in up.stderr and len(up.stderr.strip().splitlines()) == 1, up.stderr
        assert "cannot write to the data dir" in up.stderr and "P419_DATA_DIR" in up.stderr
        status = p419(env, "status")
        assert status.returncode == 1 and "not running" in status.stderr and "Traceback" not in status.stderr
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False, capture_output=True)


CORRUPT_STATES = {
    "pid null": '{"pid": null}',
    "a list": "[]",
    "no children": None,  # a live pid and its real create_time, but no children: filled in below
    "children of the wrong type": None,
    "not JSON": '{"pid": 12',
}


@pytest.mark.parametrize("case", list(CORRUPT_STATES))
def test_a_corrupt_state_file_is_one_clear_line_for_status_and_down(tmp_path: Path, case: str) -> None:
    me = psutil.Process()
    live = {"pid": me.pid, "create_time": me.create_time(), "api_url": "http://x", "ready": True}
    contents = {
        **CORRUPT_STATES,
        "no children": json.dumps(live),
        "children of the wrong type": json.dumps({**live, "children": {"api": {"pid": "12", "state": 3}}}),
    }
    run_dir = tmp_path / "data" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "up.json").write_text(contents[case] or "")
    assert read_state(run_dir) is None
    env = {**clean_environ(), "P419_DATA_DIR": str(tmp_path / "data")}
    for verb in ("status", "down"):
        done = p419(env, verb)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "not running" in done.stderr


def test_up_moves_a_corrupt_state_file_aside_and_starts(piped_up, tmp_path: Path) -> None:
    run_dir = tmp_path / "data" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "up.json").write_text('{"pid": null}')
    up = piped_up("--broker", "embedded", "--workers", "1", "--pool", "solo", "--grace", "5")
    up.read_until(STACK_READY)
    up.keep_draining()
    assert any("state file was corrupt: moved it aside" in line for line in up.seen)
    [aside] = run_dir.glob("up.json.corrupt-*")
    assert aside.read_text() == '{"pid": null}'
    assert up.state()["pid"] == up.proc.pid
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(30) == 0
    assert not (run_dir / "up.json").exists()


def test_up_on_a_disk_that_fills_up_keeps_running_and_stops_cleanly(piped_up, tmp_path: Path) -> None:
    """Issue 12 item 6 for real: the data dir on a small tmpfs, filled while the stack runs."""
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(data)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    filling = threading.Event()
    try:
        up = piped_up("--workers", "1", "--pool", "solo", "--grace", "3", data_dir=data)
        up.read_until(STACK_READY)
        up.keep_draining()
        kids = up.descendants()

        # Keep the disk full: a file a child removes while stopping (a worker's heartbeat) frees a page, and
        # Redis's tiny final snapshot then fits. Whatever is freed is taken back at once, until the stop is over.
        def fill() -> None:
            with (data / "filler").open("wb", buffering=0) as filler:
                while not filling.is_set():
                    try:
                        filler.write(b"\0" * 4096)
                    except OSError:
                        time.sleep(0.01)

        filler_thread = threading.Thread(target=fill, daemon=True)
        filler_thread.start()
        assert wait_until(lambda: shutil.disk_usage(data).free < 4096, 10)

        def file_logs_stopped() -> bool:
            with contextlib.suppress(httpx.HTTPError):  # the API may fail as it likes on a full disk
                httpx.post(f"http://127.0.0.1:{up.api_port}/products", json={"name": "x" * 500, "price": 1})
            return any("file logs stopped" in line for line in up.seen)

        assert wait_until(file_logs_stopped, 30, interval=0.2), "".join(up.seen)[-3000:]
        assert up.proc.poll() is None, "the supervisor must survive a full disk"
        [note] = [line for line in up.seen if "file logs stopped" in line]
        assert "No space left on device" in note
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(30) == 130
        err = up.stderr.read_text()
        assert "Traceback" not in err and "Exception ignored" not in err, err
        # redis-server cannot save on the full disk and refuses SIGTERM: the stop kills it and says so
        filling.set()
        assert any("killed after the grace period: redis" in line for line in up.seen), "".join(up.seen[-25:])
        assert not (data / "run" / "up.json").exists() and not (data / "run" / "up.tmp").exists()
        assert wait_until(lambda: all_gone(kids), 10), [p.cmdline() for p in kids if p.is_running()]
    finally:
        filling.set()
        subprocess.run(["umount", "-l", str(data)], check=False, capture_output=True)


def test_the_end_of_a_childs_output_wakes_the_manager_once_it_has_exited() -> None:
    """The pump relays every line, then, once the child has exited, the wake-up item: the manager's wait
    returns at once and its poll sees the exit status (no 50 ms poll to notice it)."""
    from python419.supervisor.process import WAKE, _pump

    popen = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('last words'); sys.exit(3)"], stdout=subprocess.PIPE
    )
    got: list[tuple[str, str]] = []
    codes: list[int | None] = []

    def sink(name: str, line: str) -> None:
        got.append((name, line))
        if (name, line) == WAKE:
            codes.append(popen.poll())

    _pump("api", popen, sink)
    assert got == [("api", "last words"), WAKE]
    assert codes == [3]

"""The supervisor's decisions without real processes: plan, backoff, the control loop with a fake clock."""

from __future__ import annotations

import ctypes
import queue
import re
from pathlib import Path

import pytest

from python419.launch.watchdog import parent_gone
from python419.project import Flags
from python419.supervisor import events as ev
from python419.supervisor.manager import Manager
from python419.supervisor.orphans import (
    JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    ExtendedLimits,
    JobObject,
)
from python419.supervisor.plan import ChildSpec
from python419.supervisor.printer import Printer, describe
from python419.supervisor.restart import Backoff
from tests.plans import plan_for

# --- backoff ----------------------------------------------------------------------------------


def test_backoff_doubles_caps_resets_and_gives_up() -> None:
    backoff = Backoff()
    delays = [backoff.on_exit(ran_for=1).delay for _ in range(4)]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert backoff.on_exit(ran_for=1).give_up  # fifth failure to start in a row
    ready_then_died = Backoff()
    decisions = [ready_then_died.on_exit(ran_for=1, was_ready=True) for _ in range(8)]
    assert not any(d.give_up for d in decisions) and decisions[-1].delay == 30.0  # backoff, never given up
    healthy = Backoff(failures=4)
    decision = healthy.on_exit(ran_for=61)
    assert decision.delay == 0.5 and not decision.give_up
    assert Backoff(failures=20).on_exit(ran_for=1).delay == 30.0


# --- the control loop with fakes ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakeChild:
    next_pid = 1000

    def __init__(self, spec: ChildSpec, world: World) -> None:
        FakeChild.next_pid += 1
        self.pid, self.spec, self.world = FakeChild.next_pid, spec, world
        self.code: int | None = None
        self.stops_at: float | None = None

    def poll(self) -> int | None:
        if self.code is None and self.stops_at is not None and self.world.clock.now >= self.stops_at:
            self.code = 0
        return self.code

    def stop(self) -> None:
        self.world.log.append(("stop", self.spec.name, self.world.clock.now))
        if self.spec.name not in self.world.ignores_stop:
            self.stops_at = self.world.clock.now + self.world.stop_takes.get(self.spec.name, 0.0)

    def kill_tree(self) -> None:
        if self.code is None:
            self.world.log.append(("kill", self.spec.name, self.world.clock.now))
            self.code = -9


class World:
    """Fake processes: which children crash at once, which never get ready, which ignore SIGTERM."""

    def __init__(
        self,
        crashing: set[str] = frozenset(),
        unready: set[str] = frozenset(),
        ignores_stop: set[str] = frozenset(),
    ) -> None:  # type: ignore[assignment]
        self.clock = Clock()
        self.crashing, self.unready, self.ignores_stop = set(crashing), set(unready), set(ignores_stop)
        self.stop_takes: dict[str, float] = {}
        self.unstartable: set[str] = set()
        self.children: dict[str, list[FakeChild]] = {}
        self.log: list[tuple[str, str, float]] = []
        self.events: list[ev.Event] = []
        self.probed: list[tuple[str, float]] = []
        self.silent: set[str] = set()  # start, but never print their readiness line (Readiness.line)
        self.answers: dict[str, bool | str] = {}  # what the probe says of a child (default: ready)
        self.line_after: dict[str, float] = {}  # print it that long after starting (default: at once)
        self.pending: list[tuple[float, str, str]] = []  # (when, child, line)
        self.lines: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()  # what the children print

    def factory(self, spec: ChildSpec) -> FakeChild:
        if spec.name in self.unstartable:
            raise PermissionError(13, "Permission denied")
        child = self.new_child(spec)
        if spec.name in self.crashing:
            child.code = 1
        self.children.setdefault(spec.name, []).append(child)
        self.log.append(("start", spec.name, self.clock.now))
        if spec.ready is not None and spec.ready.line:
            self.say(spec.name, "1:M 26 Nov 2026 21:00:00.000 * Server initialized")
        if spec.ready is not None and spec.ready.line and spec.name not in self.silent:
            said = "1:M 26 Nov 2026 21:00:00.001 * Ready to accept connections tcp"
            if spec.name in self.line_after:
                self.pending.append((self.clock.now + self.line_after[spec.name], spec.name, said))
            else:
                self.say(spec.name, said)
        return child

    def new_child(self, spec: ChildSpec) -> FakeChild:
        return FakeChild(spec, self)

    def say(self, name: str, line: str) -> None:
        self.lines.put((name, line))

    def sleep(self, seconds: float) -> None:
        """The manager's sleep: time passes, and the lines due by then are printed; as with the real queue, a
        line ends the wait."""
        first_line = min((at for at, _, _ in self.pending), default=float("inf"))
        self.clock.sleep(max(0.0, min(seconds, first_line - self.clock.now)))
        for due in [p for p in self.pending if p[0] <= self.clock.now]:
            self.pending.remove(due)
            self.say(due[1], due[2])

    def probe(self, spec: ChildSpec) -> bool | str:
        self.probed.append((spec.name, self.clock.now))
        return self.answers.get(spec.name, spec.name not in self.unready)

    def manager(self, tmp_path: Path, config: dict | None = None, **kw: object) -> Manager:
        plan = plan_for("linux", tmp_path, Flags(workers=2), config=config)
        return Manager(
            plan,
            self.factory,
            self.probe,
            self.events.append,
            lines=self.lines,
            clock=self.clock,
            sleep=self.sleep,
            **kw,  # type: ignore[arg-type]
        )

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_starts_all_in_parallel_gates_on_readiness_then_stops_in_waves(tmp_path: Path) -> None:
    world = World()
    world.stop_takes = {"worker1": 1.0, "worker2": 0.4, "api": 0.2}
    manager = world.manager(tmp_path)
    calls = {"n": 0}

    def stop_after_ready() -> bool:
        calls["n"] += 1
        return manager.stack_ready

    manager.stop_requested = stop_after_ready
    assert manager.run() == 0
    starts = [entry for entry in world.log if entry[0] == "start"]
    assert [s[1] for s in starts] == ["redis", "api", "worker1", "worker2"] and {s[2] for s in starts} == {
        0.0
    }
    [ready] = world.of(ev.StackReady)
    assert ready.urls[0].startswith("http://127.0.0.1:")
    stops = {name: at for kind, name, at in world.log if kind == "stop"}
    # the API and the workers are asked at the same moment; the broker only once the slowest worker is gone
    first = stops["api"]
    assert stops["worker1"] == stops["worker2"] == first
    assert first + 1.0 <= stops["redis"] <= first + 1.0 + 0.1
    assert all(e.expected for e in world.of(ev.Exited))


def test_an_api_that_answers_5xx_is_ready_with_a_warning_and_the_stack_stays(tmp_path: Path) -> None:
    """A 5xx on the ready path is a server that runs with a bug: the stack becomes ready and says so (it used to
    be torn down after --ready-timeout, hiding the project's working endpoints)."""
    world = World()
    world.answers["api"] = "it answers 500 on / (its server runs; the app fails there)"
    manager = world.manager(tmp_path)
    manager.stop_requested = lambda: manager.stack_ready and world.clock.now > 5
    assert manager.run() == 0
    [api] = [e for e in world.of(ev.ChildReady) if e.name == "api"]
    assert api.warning and "500 on /" in api.warning
    assert world.of(ev.StackReady) and all(e.expected for e in world.of(ev.Exited))
    assert "api ready in" in describe(api)[0] and "500" in describe(api)[0]


STEPS = {
    "api": "main:app",
    "celery": "worker.celery",
    "steps": [
        {"name": "migrate", "command": "alembic upgrade head"},
        {"name": "seed", "command": "python -m seed", "timeout": 5},
    ],
}


def step_world(**runs: float | int) -> World:
    """A world whose steps finish after `runs[name]` seconds (exit 0), or exit with an int code at once."""
    world = World()

    class StepChild(FakeChild):
        def __init__(self, spec: ChildSpec, w: World) -> None:
            super().__init__(spec, w)
            if spec.kind == "step":
                outcome = runs.get(spec.name, 0.0)
                if isinstance(outcome, int) and not isinstance(outcome, bool):
                    self.code = outcome
                else:
                    self.stops_at = w.clock.now + float(outcome)

    world.new_child = lambda spec: StepChild(spec, world)  # type: ignore[method-assign]
    return world


def test_steps_run_in_order_after_the_broker_and_before_the_rest(tmp_path: Path) -> None:
    world = step_world(migrate=1.0, seed=0.5)
    manager = world.manager(tmp_path, STEPS)
    manager.stop_requested = lambda: manager.stack_ready
    assert manager.run() == 0
    starts = {name: at for kind, name, at in world.log if kind == "start"}
    assert starts["redis"] == 0.0
    assert 0.0 < starts["migrate"] < starts["seed"] < starts["api"] == starts["worker1"] == starts["worker2"]
    assert starts["seed"] >= starts["migrate"] + 1.0 and starts["api"] >= starts["seed"] + 0.5
    assert [e.name for e in world.of(ev.StepDone)] == ["migrate", "seed"]
    assert "seed" not in [n for kind, n, _ in world.log if kind in ("stop", "kill")]  # done: nothing to stop


def test_a_failing_step_stops_the_start_with_its_last_lines(tmp_path: Path) -> None:
    world = step_world(migrate=3)
    manager = world.manager(tmp_path, STEPS)
    assert manager.run() == 1
    [failed] = world.of(ev.Failed)
    assert failed.name == "migrate" and failed.reason == "exited with code 3"
    started = {name for kind, name, _ in world.log if kind == "start"}
    assert started == {"redis", "migrate"}  # neither seed nor the servers


def test_a_hanging_step_is_killed_after_its_timeout(tmp_path: Path) -> None:
    world = step_world(migrate=0.1, seed=999.0)
    manager = world.manager(tmp_path, STEPS)
    assert manager.run() == 1
    [failed] = world.of(ev.Failed)
    assert failed.name == "seed" and "did not finish within 5s" in failed.reason
    kill = next(at for kind, name, at in world.log if kind == "kill" and name == "seed")
    start = next(at for kind, name, at in world.log if kind == "start" and name == "seed")
    assert 5.0 <= kill - start <= 5.1


def test_redis_is_probed_only_once_it_says_it_is_ready_and_then_at_once(tmp_path: Path) -> None:
    world = World()
    world.line_after = {"redis": 0.33}  # loading its data: the port may already accept, commands get -LOADING
    manager = world.manager(tmp_path)
    wake_ups_until_ready: list[int] = []

    def stop_once_ready() -> bool:
        if manager.stack_ready and not wake_ups_until_ready:
            wake_ups_until_ready.append(manager.wake_ups)
        return manager.stack_ready

    manager.stop_requested = stop_once_ready
    assert manager.run() == 0
    assert wake_ups_until_ready[0] <= 10, "the loop spun while Redis was loading"
    redis_probes = [at for name, at in world.probed if name == "redis"]
    assert redis_probes and min(redis_probes) >= 0.33, "probed before Redis said it was ready"
    # the line wakes the loop and is probed in the same pass, not at the next 50 ms probe tick
    assert redis_probes[0] == pytest.approx(0.33, abs=0.002)
    assert [e.name for e in world.of(ev.ChildReady)][-1] == "redis"


def test_a_redis_that_never_says_it_is_ready_is_never_ready(tmp_path: Path) -> None:
    world = World()
    world.silent = {"redis"}
    manager = world.manager(tmp_path, ready_timeout=3.0)
    assert manager.run() == 1
    assert "redis" not in {name for name, _ in world.probed}
    [failed] = world.of(ev.Failed)
    assert failed.name == "redis" and "not ready after 3s" in failed.reason
    assert failed.tail[-1].endswith("Server initialized")


def test_a_restarted_redis_must_say_it_again(tmp_path: Path) -> None:
    world = World()
    manager = world.manager(tmp_path)
    said_once: list[bool] = []

    def crash_redis_once_ready() -> bool:
        redis = world.children["redis"]
        if manager.stack_ready and len(redis) == 1:
            redis[0].code = 1  # crashes; its restart prints nothing this time
            world.silent = {"redis"}
        elif len(redis) == 2:
            said_once.append(manager.states["redis"].said_ready)
        return world.clock.now > 5.0

    manager.stop_requested = crash_redis_once_ready
    assert manager.run() == 0
    assert len(world.children["redis"]) == 2 and said_once and not any(said_once)
    assert not manager.states["redis"].ready, "a restart that never printed its line was taken for ready"


def test_a_child_that_cannot_start_is_given_up_alone_and_restart_brings_it_back(tmp_path: Path) -> None:
    """Five exits before ready: that child is fatal (its last lines shown), the rest of the stack is ready and
    keeps running; `p419 restart NAME` starts it again."""
    world = World(crashing={"worker2"})
    manager = world.manager(tmp_path)
    asked: list[list[str]] = []
    manager.restart_requested = lambda: asked.pop() if asked else []

    def stop_when() -> bool:
        if world.of(ev.GaveUp) and not asked and "worker2" in world.crashing:
            world.crashing.discard("worker2")  # the fix is deployed
            asked.append(["worker2"])
        return len([e for e in world.of(ev.ChildReady) if e.name == "worker2"]) == 1

    manager.stop_requested = stop_when
    assert manager.run() == 0
    starts = [t for kind, name, t in world.log if kind == "start" and name == "worker2"]
    gaps = [round(b - a, 2) for a, b in zip(starts[:5], starts[1:5], strict=False)]
    # each gap is the backoff delay plus at most a couple of 50 ms loop ticks to notice the exit
    for gap, delay in zip(gaps, [0.5, 1.0, 2.0, 4.0], strict=True):
        assert delay <= gap <= delay + 0.15
    [gave_up] = world.of(ev.GaveUp)
    assert gave_up.name == "worker2" and "could not start 5 times in a row" in gave_up.reason
    assert "p419 restart worker2" in gave_up.reason and not world.of(ev.Failed)
    assert world.of(ev.StackReady)  # the others were ready without it
    assert len(starts) == 6  # brought back by the restart
    assert not [
        n for kind, n, _ in world.log if kind == "stop" and world.of(ev.Stopping)[0].reason != "p419 down"
    ]


def test_a_child_that_was_ready_is_restarted_however_often_it_dies(tmp_path: Path) -> None:
    """Killed after it became ready, five times and more: restarted each time, never given up."""
    world = World()
    manager = world.manager(tmp_path)
    kills = {"n": 0}

    def kill_worker1_when_ready() -> bool:
        state = manager.states["worker1"]
        if state.ready and state.child is not None and kills["n"] < 7:
            state.child.code = -9  # kill -9 from outside
            kills["n"] += 1
        return len([e for e in world.of(ev.ChildReady) if e.name == "worker1"]) == 8  # ready again after 7

    manager.stop_requested = kill_worker1_when_ready
    assert manager.run() == 0
    assert not world.of(ev.GaveUp) and not world.of(ev.Failed)
    assert len([1 for kind, name, _ in world.log if kind == "start" and name == "worker1"]) == 8


def test_a_broker_that_cannot_start_stops_the_stack_and_says_why(tmp_path: Path) -> None:
    world = World(crashing={"redis"})
    manager = world.manager(tmp_path)
    assert manager.run() == 1
    [failed] = world.of(ev.Failed)
    assert failed.name == "redis" and "the broker: nothing runs without it" in failed.reason


def test_child_never_ready_fails_with_its_last_lines(tmp_path: Path) -> None:
    world = World(unready={"api"})
    manager = world.manager(tmp_path, ready_timeout=3.0)
    manager.lines.put(("api", "ERROR: [Errno 98] address already in use"))
    assert manager.run() == 1
    [failed] = world.of(ev.Failed)
    assert failed.name == "api" and "not ready after 3s" in failed.reason
    assert "address already in use" in failed.tail[-1]
    assert world.of(ev.StackReady) == []


def test_grace_period_then_kill(tmp_path: Path) -> None:
    world = World(ignores_stop={"worker1"})
    manager = world.manager(tmp_path, grace=2.0)
    manager.stop_requested = lambda: manager.stack_ready
    assert manager.run() == 0
    [kill] = [entry for entry in world.log if entry[0] == "kill"]
    [stop] = [entry for entry in world.log if entry[0] == "stop" and entry[1] == "worker1"]
    assert kill[1] == "worker1" and kill[2] - stop[2] == pytest.approx(2.0, abs=0.1)


def test_second_interrupt_kills_at_once(tmp_path: Path) -> None:
    world = World(ignores_stop={"worker1", "worker2"})
    manager = world.manager(tmp_path, grace=60.0)
    original_sleep = world.clock.sleep

    def sleep(seconds: float) -> None:
        original_sleep(seconds)
        if manager.stack_ready:
            manager.request_stop("first Ctrl+C")
            if any(kind == "stop" for kind, *_ in world.log):
                manager.request_stop("second Ctrl+C")

    manager.sleep = sleep
    assert manager.run() == 0
    kills = [entry for entry in world.log if entry[0] == "kill"]
    assert {k[1] for k in kills} == {"worker1", "worker2"}
    assert all(k[2] < 5 for k in kills), "a second Ctrl+C must not wait out the 60 s grace"
    assert any(isinstance(e, ev.Stopping) and e.force for e in world.events)


def test_redis_gets_time_to_stop_even_after_workers_used_the_grace(tmp_path: Path) -> None:
    world = World(ignores_stop={"worker1"})
    world.stop_takes = {"api": 0.5, "redis": 0.5}
    manager = world.manager(tmp_path, grace=2.0)
    manager.stop_requested = lambda: manager.stack_ready
    assert manager.run() == 0
    killed = {name for kind, name, _ in world.log if kind == "kill"}
    assert killed == {"worker1"}, "API and Redis stop on SIGTERM, not SIGKILL"
    stops = {name: t for kind, name, t in world.log if kind == "stop"}
    assert stops["api"] == stops["worker1"]
    assert stops["redis"] - stops["worker1"] == pytest.approx(2.0, abs=0.1)


def test_a_child_that_cannot_start_stops_the_stack_cleanly(tmp_path: Path) -> None:
    world = World()
    world.unstartable = {"worker1"}
    manager = world.manager(tmp_path)
    assert manager.run() == 1
    [failed] = world.of(ev.Failed)
    assert (
        failed.name == "worker1"
        and "could not start" in failed.reason
        and "Permission denied" in failed.reason
    )
    assert [n for kind, n, _ in world.log if kind == "stop"] == ["api", "redis"]


def test_the_first_children_are_all_spawned_before_any_is_announced(tmp_path: Path) -> None:
    """`p419 up` loads its printer and state file in `spawned`, between the spawns and their announcements, so
    that those imports overlap the children's start; every spawned child is still announced, in plan order."""
    world = World()
    seen: list[tuple[int, int]] = []  # (spawned so far, events so far) when `spawned` runs
    manager = world.manager(
        tmp_path, spawned=lambda: seen.append((len(world.log), len(world.of(ev.Started))))
    )
    manager.stop_requested = lambda: manager.stack_ready
    assert manager.run() == 0
    assert seen == [(4, 0)]  # once: all four spawned, none announced yet
    assert [e.name for e in world.of(ev.Started)] == ["redis", "api", "worker1", "worker2"]


def test_a_spawn_that_fails_in_the_first_wave_is_said_after_the_ones_before_it(tmp_path: Path) -> None:
    world = World()
    world.unstartable = {"worker1"}
    calls: list[str] = []
    manager = world.manager(tmp_path, spawned=lambda: calls.append("spawned"))
    assert manager.run() == 1
    said = [(type(e).__name__, e.name) for e in world.events if isinstance(e, ev.Started | ev.Failed)]
    assert said == [("Started", "redis"), ("Started", "api"), ("Failed", "worker1")]
    assert calls == ["spawned"] and "worker2" not in world.children  # nothing spawned after the failure


# --- orphans and Windows seams ------------------------------------------------------------------


def test_parent_gone() -> None:
    assert parent_gone(False, 10, 1, lambda _: True)
    assert not parent_gone(False, 10, 10, lambda _: False)
    assert parent_gone(True, 10, 10, lambda _: False)  # Windows keeps a stale ppid
    assert not parent_gone(True, 10, 10, lambda _: True)


class FakeKernel32:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def CreateJobObjectW(self, *args: object) -> int:
        self.calls.append(("CreateJobObjectW", args))
        return 77

    def SetInformationJobObject(self, handle: int, klass: int, info: object, size: int) -> int:
        limits = ctypes.cast(info, ctypes.POINTER(ExtendedLimits)).contents
        self.calls.append(
            ("SetInformationJobObject", handle, klass, limits.BasicLimitInformation.LimitFlags, size)
        )
        return 1

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        self.calls.append(("AssignProcessToJobObject", job, process))
        return process != 666


def test_job_object_kills_on_close_and_takes_children() -> None:
    k32 = FakeKernel32()
    job = JobObject(k32)
    job.assign(4321)
    assert k32.calls[1] == (
        "SetInformationJobObject",
        77,
        JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
        ctypes.sizeof(ExtendedLimits),
    )
    assert k32.calls[-1] == ("AssignProcessToJobObject", 77, 4321)
    with pytest.raises(OSError, match="AssignProcessToJobObject failed"):
        job.assign(666)


def test_job_layout_matches_the_windows_sdk() -> None:
    # JOBOBJECT_EXTENDED_LIMIT_INFORMATION is 144 bytes on 64-bit Windows (112 on 32-bit).
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(ExtendedLimits) == 144
        assert ExtendedLimits.IoInfo.offset == 64


# --- printer ----------------------------------------------------------------------------------


def test_printer_aligns_prefixes_and_writes_log_files(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=200, force_terminal=False, color_system=None)
    printer = Printer(console, ["redis", "api", "worker1"], tmp_path / "logs")
    printer.handle(ev.Output("api", "Uvicorn running"))
    printer.handle(ev.Restarting("worker1", 0.5, 1))
    printer.handle(ev.Exited("worker1", 1, expected=False))
    # A launcher's traceback goes to the log file only; its one-line verdict is shown once, whoever says it.
    printer.handle(ev.Output("worker1", "p419-log-only: Traceback (most recent call last):"))
    printer.handle(ev.Output("worker1", "p419: cannot load the Celery app 'w': circular import: a → b → a"))
    printer.handle(ev.Output("api", "p419: cannot load the Celery app 'w': circular import: a → b → a"))
    printer.close()
    lines = console.export_text().splitlines()
    assert lines == [
        "api     | Uvicorn running",
        "p419    | restarting worker1 in 0.5s (failure 1 in a row)",
        "p419    | worker1 exited unexpectedly with code 1",
        "worker1 | p419: cannot load the Celery app 'w': circular import: a → b → a",
    ]
    # the file logs: every line, each with its time (issue 18 item 6)
    stamped = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
    assert re.fullmatch(
        stamped + "Uvicorn running\n" + stamped + "p419: .*\n", (tmp_path / "logs" / "api.log").read_text()
    )
    worker_log = (tmp_path / "logs" / "worker1.log").read_text()
    assert re.match(stamped + "Traceback \\(most recent call last\\):\n", worker_log)
    assert re.search(stamped + "restarting worker1 in 0.5s", (tmp_path / "logs" / "p419.log").read_text())
    assert "\x1b[" not in console.export_text(styles=False)


def test_the_plain_console_writes_what_rich_writes_to_a_pipe(tmp_path: Path) -> None:
    """`p419 up` whose output is no terminal prints through PlainConsole, without rich: the same text, line for
    line, as rich's console gives a pipe (a journal, a CI log), for every kind of line."""
    import io

    from rich.console import Console

    from python419.supervisor.printer import PlainConsole

    events: list[ev.Event] = [
        ev.Note("broker: starting redis-server for redis://127.0.0.1:6379/0"),
        ev.Started("redis", 10),
        ev.Output("redis", "Ready to accept connections\r"),  # a control code
        ev.Output("worker1", "\tindented \u2192 caf\u00e9 \U0001f680"),
        ev.Drained(),
        ev.ChildReady("api", 0.4, "it answers 500 on / (its server runs; the app fails there)"),
        ev.Failed("worker1", "exited with code 1", ("last words", "Traceback ...")),
        ev.StackReady(1.0, ("http://127.0.0.1:8000", "http://127.0.0.1:8000/docs")),
        ev.Note("loud", loud=True),
    ]
    rich_out, plain_out = io.StringIO(), io.StringIO()
    for console in (Console(file=rich_out, highlight=False), PlainConsole(plain_out)):
        printer = Printer(console, ["redis", "api", "worker1"], tmp_path / type(console).__name__)
        for event in events:
            printer.handle(event)
        printer.close()
    assert plain_out.getvalue() == rich_out.getvalue()
    assert plain_out.getvalue().splitlines()[:3] == [
        "p419    | broker: starting redis-server for redis://127.0.0.1:6379/0",
        "p419    | started redis (pid 10)",
        "redis   | Ready to accept connections",
    ]


def test_a_plain_console_that_goes_away_stops_the_console_only(tmp_path: Path) -> None:
    import io

    from python419.supervisor.printer import PlainConsole

    class Gone(io.StringIO):
        """stdout when `p419 up | tee log` lost its tee."""

        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    printer = Printer(PlainConsole(Gone()), ["api"], tmp_path / "logs")
    printer.handle(ev.Note("one"))
    printer.handle(ev.Output("api", "two"))
    printer.close()
    assert not printer.console_ok
    said = (tmp_path / "logs" / "p419.log").read_text()
    assert "console output stopped (Broken pipe); the file logs go on" in said
    assert "two" in (tmp_path / "logs" / "api.log").read_text()


def test_describe_covers_every_event() -> None:
    samples = [
        ev.Started("api", 1),
        ev.ChildReady("api", 0.4),
        ev.StackReady(1.0, ("http://a", "http://a/docs")),
        ev.Exited("api", 0, True),
        ev.Restarting("api", 1, 2),
        ev.Failed("api", "gave up"),
        ev.GaveUp("worker1", "could not start"),
        ev.StepDone("migrate", 0.4),
        ev.Stopping("Ctrl+C"),
        ev.Note("hello"),
    ]
    assert all(describe(e)[0] for e in samples)


def test_state_file_survives_a_failed_write(tmp_path: Path) -> None:
    import os

    from python419.supervisor.state import StateFile

    state = StateFile(tmp_path / "run", os.getpid(), "http://x", "redis")
    state.path.unlink()
    (tmp_path / "run").rmdir()  # the folder vanished under us: the manager must not notice
    state.handle(ev.Started("api", os.getpid()))
    assert state.data["children"]["api"]["state"] == "starting"

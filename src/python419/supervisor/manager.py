"""The control loop of `p419 up`: start children in parallel, gate on readiness, restart with backoff,
give up on a crash loop, stop in waves (the broker last). It only decides and emits events; printing is
someone else's job.

Time and processes are injected (clock, sleep, factory, probe), so every decision is testable with fakes.

The loop blocks on the line queue until the next thing is due (a readiness probe, a restart, the ready
timeout) or `idle_poll` at the latest, which bounds how late it notices a child that exited, `p419 down`'s stop
file, and (on Windows, where a lock wait may not be interrupted by Ctrl+C) a signal; on POSIX a signal wakes it at
once (request_stop puts a WAKE item on the queue). Measured idle with scripts/bench --only idle, same run: the old
fixed 50 ms tick 21.9 wake-ups/s and 0.30 % CPU; now 4.0/s and 0.05-0.10 %; honcho 10.1-10.7/s, 0.15-0.20 %.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from python419.launch.contract import CONFIG_EXIT, REFUSED_EXIT, SAYS
from python419.platforms import stopped_cleanly
from python419.supervisor import events as ev
from python419.supervisor.plan import STOP_WAVES, ChildSpec, Plan
from python419.supervisor.process import WAKE, Child
from python419.supervisor.restart import Backoff

TAIL_LINES = 15
MIN_GROUP_GRACE = 2.0
PROBE_EVERY = 0.05
IDLE_POLL = 0.25  # longest wait when nothing is due: 4 wake-ups a second once the stack is up
STOP_POLL = 0.05  # while stopping, exits are expected any moment: notice them quickly
KILL_WAIT = 5.0  # after SIGKILL, how long to wait for the kernel to hand back each child's exit status
MIN_WAIT = 0.001

Lines = queue.SimpleQueue[tuple[str, str]] | queue.Queue[tuple[str, str]]


@dataclass
class ChildState:
    spec: ChildSpec
    child: Child | None = None
    started_at: float = 0.0
    ready: bool = False
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    next_probe: float = 0.0
    said_ready: bool = False  # printed its readiness line (Readiness.line), since this start
    restart_by: float | None = None  # a restart we asked for: stopping warmly until then, then killed
    parked: bool = False  # cannot load the app under --reload: down until the next change
    fatal: bool = False  # could not start, given up: down until `p419 restart` or a --reload save
    failure: ev.Failed | None = None  # why its last spawn failed

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None

    @property
    def awaiting_line(self) -> bool:
        """Not probed until it prints its readiness line; the line itself wakes the loop (see _line)."""
        return self.spec.ready is not None and self.spec.ready.line is not None and not self.said_ready


class Manager:
    def __init__(
        self,
        plan: Plan,
        factory: Callable[[ChildSpec], Child],
        probe: Callable[[ChildSpec], bool | str],  # a str: ready, with that warning
        emit: Callable[[ev.Event], None],
        *,
        lines: Lines | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        restart_requested: Callable[[], list[str]] = lambda: [],
        reload: bool = False,
        grace: float = 10.0,
        ready_timeout: float = 30.0,
        idle_poll: float = IDLE_POLL,
        spawned: Callable[[], None] = lambda: None,
    ) -> None:
        self.plan, self.factory, self.probe, self.emit = plan, factory, probe, emit
        # Called once the first children are spawned, before they are announced: the caller loads there what
        # only supervising needs (its printer, its state file), while the children import their own code.
        self.spawned = spawned
        # A SimpleQueue: request_stop puts on it from a signal handler, and only SimpleQueue.put is reentrant.
        self.lines: Lines = lines if lines is not None else queue.SimpleQueue()
        self.clock, self.sleep, self.stop_requested = clock, sleep, stop_requested
        self.restart_requested, self.reload = restart_requested, reload
        self._restarts: queue.SimpleQueue[tuple[tuple[str, ...], str]] = queue.SimpleQueue()
        self.grace, self.ready_timeout, self.idle_poll = grace, ready_timeout, idle_poll
        self.states = {spec.name: ChildState(spec) for spec in plan.children}
        self.steps = {spec.name: ChildState(spec) for spec in plan.steps}  # one-shot, run before the rest
        self._stop_reason: str | None = None
        self._stop_code = 0
        self._force = False
        self._exit_code = 1
        self._stopping = False
        self._listener_error: Exception | None = None
        self.stack_ready = False
        self.wake_ups = 0  # waits that ended, for the idle benchmark

    # --- called from signal handlers -------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested", exit_code: int = 0) -> None:
        """First call: orderly stop, then exit with `exit_code`. Second call: kill at once."""
        if self._stop_reason is None:
            self._stop_reason, self._stop_code = reason, exit_code
        else:
            self._force = True
        if isinstance(self.lines, queue.SimpleQueue):  # reentrant: safe inside a signal handler
            self.lines.put(WAKE)

    def request_restart(self, names: tuple[str, ...], reason: str) -> None:
        """Restart these children (warmly) as soon as the loop wakes; safe from any thread."""
        self._restarts.put((names, reason))
        if isinstance(self.lines, queue.SimpleQueue):
            self.lines.put(WAKE)

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        """Whatever goes wrong in here (a listener that raises, a probe that fails), the children are
        stopped before the error goes on."""
        try:
            code = self._run()
        except BaseException:
            if not self._stopping:
                self._shutdown(1, "internal error: stopping everything")
            else:  # the stop itself failed: still, no child may outlive us
                for state in self.states.values():
                    if state.child is not None:
                        state.child.kill_tree()
            raise
        if self._listener_error is not None:
            raise self._listener_error  # a bug in a listener: reported after the stack was stopped, not lost
        return code

    def _run(self) -> int:
        began = self.clock()
        # With one-shot steps: the broker first, then each step to completion, then the rest, in parallel.
        first = [s for s in self.states.values() if not self.steps or s.spec.kind == "redis"]
        failed = next((state for state in first if not self._start(state, announce=False)), None)
        self.spawned()
        for state in first:  # announced once all are spawned: a spawn waits for no printing
            if state.child is not None:
                self._emit(ev.Started(state.spec.name, state.child.pid))
        if failed is not None:
            assert failed.failure is not None
            self._emit(failed.failure)
            return self._shutdown(1, f"{failed.spec.name} could not start")
        if self.steps:
            failure = self._run_steps(began, first)
            if failure:
                return self._shutdown(self._stop_code if self._stop_reason else 1, failure)
            began = self.clock()  # --ready-timeout is the servers' own: a long migration does not eat it
            for state in self.states.values():
                if state.child is None and not self._start(state):
                    return self._shutdown(1, f"{state.spec.name} could not start")
        while True:
            self._wait(self._next_deadline(began), self.idle_poll)
            if self._stop_reason is None and self.stop_requested():
                self._stop_reason = "p419 down"
            if self._stop_reason is not None:
                return self._shutdown(self._stop_code, self._stop_reason)
            now = self.clock()
            self._take_restart_requests(now)
            for state in self.states.values():
                failure = self._check_exit(state, now)
                if failure:
                    state.restart_at = float("inf")  # its exit is reported: not again while stopping
                    return self._shutdown(self._exit_code, failure)
                if state.restart_at is not None and now >= state.restart_at and not self._start(state):
                    return self._shutdown(1, f"{state.spec.name} could not start")
            self._probe_readiness(now, began)
            if not self.stack_ready and now - began > self.ready_timeout:
                late = next(s for s in self.states.values() if not (s.ready or s.fatal))
                self._emit(
                    ev.Failed(late.spec.name, f"not ready after {self.ready_timeout:g}s", tuple(late.tail))
                )
                return self._shutdown(1, f"{late.spec.name} never got ready")

    # --- one-shot steps ------------------------------------------------------------------------------------

    def _run_steps(self, began: float, first: list[ChildState]) -> str | None:
        """Wait for the broker, then run each step to completion, in order. Returns why the start must stop."""
        while not all(s.ready for s in first):
            failure = self._between(began)
            if failure:
                return failure
            for state in first:
                failure = self._check_exit(state, self.clock())
                if failure:
                    state.restart_at = float("inf")
                    return failure
            self._probe_readiness(self.clock(), began)
            if self.clock() - began > self.ready_timeout:
                late = next(s for s in first if not s.ready)
                self._emit(
                    ev.Failed(late.spec.name, f"not ready after {self.ready_timeout:g}s", tuple(late.tail))
                )
                return f"{late.spec.name} never got ready"
        for step in self.steps.values():
            if not self._start(step):
                return f"step {step.spec.name} could not start"
            assert step.child is not None and step.spec.timeout is not None
            deadline = step.started_at + step.spec.timeout
            while (code := step.child.poll()) is None:
                failure = self._between(began, deadline)
                if failure:
                    step.child.kill_tree()
                    step.restart_at = float("inf")
                    return failure
                if self.clock() >= deadline:
                    step.child.kill_tree()
                    self._drain()
                    step.restart_at = float("inf")
                    why = f"did not finish within {step.spec.timeout:g}s: killed with its processes"
                    self._emit(ev.Failed(step.spec.name, why, tuple(step.tail)))
                    return f"step {step.spec.name} {why}"
            self._drain()
            step.restart_at = float("inf")  # done: never restarted, never stopped
            if code != 0:
                self._emit(ev.Failed(step.spec.name, f"exited with code {code}", tuple(step.tail)))
                return f"step {step.spec.name} failed"
            self._emit(ev.StepDone(step.spec.name, self.clock() - step.started_at))
        return None

    def _between(self, began: float, until: float | None = None) -> str | None:
        """One wait of the start-up phase; a stop asked for meanwhile ends it."""
        self._wait(until if until is not None else self._next_deadline(began), STOP_POLL)
        if self._stop_reason is None and self.stop_requested():
            self._stop_reason = "p419 down"
        return self._stop_reason

    # --- restarts asked for (p419 restart NAME, --reload) ----------------------------------------------

    def expand(self, name: str) -> list[str]:
        """A child's name, a worker group's name, or a kind (api, worker(s), beat, flower, redis)."""
        if name in self.states:
            return [name]
        group = [n for n, s in self.states.items() if s.spec.group == name]
        return group or [n for n, s in self.states.items() if s.spec.kind == name.removesuffix("s")]

    def _take_restart_requests(self, now: float) -> None:
        requests = [(tuple(self.restart_requested()), "p419 restart")]
        while True:
            try:
                requests.append(self._restarts.get_nowait())
            except queue.Empty:
                break
        for names, reason in requests:
            for asked in names:
                found = self.expand(asked)
                if not found:
                    self._emit(ev.Note(f"restart {asked}: no such child (see p419 status)", loud=True))
                for name in found:
                    self._begin_restart(self.states[name], reason, now)

    def _begin_restart(self, state: ChildState, reason: str, now: float) -> None:
        self._emit(ev.Note(f"restarting {state.spec.name} ({reason})"))
        state.backoff = Backoff()  # asked for: not a crash
        state.fatal = False
        if state.running and state.child is not None:
            state.child.stop()  # warm: a worker finishes the task in hand
            state.restart_by = now + self.grace
        elif state.restart_by is None:
            state.parked, state.restart_at = False, now

    def _finish_restart(self, state: ChildState, now: float) -> str | None:
        """The child we asked to stop for a restart: started again once it is gone (killed after grace)."""
        assert state.child is not None and state.restart_by is not None
        code = state.child.poll()
        if code is None:
            if now >= state.restart_by:
                state.child.kill_tree()
            return None
        self._drain()
        self._emit(ev.Exited(state.spec.name, code, expected=True, clean=stopped_cleanly(code)))
        state.restart_by = None
        return None if self._start(state) else f"{state.spec.name} could not start"

    def _next_deadline(self, began: float) -> float | None:
        """When the loop has something to do next, short of a line or a signal: a due probe, a restart, the
        ready timeout. None: nothing is scheduled (the idle poll applies)."""
        due: list[float] = []
        for state in self.states.values():
            if state.restart_by is not None:
                due.append(state.restart_by)
            if state.restart_at is not None:
                due.append(state.restart_at)
            elif not state.ready and state.child is not None and not state.awaiting_line:
                due.append(state.next_probe)
        if not self.stack_ready:
            due.append(began + self.ready_timeout + MIN_WAIT)
        return min(due) if due else None

    def _start(self, state: ChildState, announce: bool = True) -> bool:
        """Spawn the child; `announce`: emit Started (or Failed) now, else the caller does."""
        state.restart_at = None
        state.ready = False
        state.said_ready = False
        if state.spec.ready_file is not None:
            state.spec.ready_file.unlink(missing_ok=True)
        try:
            state.child = self.factory(state.spec)
        except OSError as exc:  # not found, not executable, out of processes
            state.child = None
            why = f"could not start {state.spec.argv[0]}: {exc.strerror or exc}"
            if exc.filename and str(exc.filename) != state.spec.argv[0]:  # an env file it reads, its folder
                why += f" ({exc.filename})"
            state.failure = ev.Failed(state.spec.name, why)
            if announce:
                self._emit(state.failure)
            return False
        state.started_at = self.clock()
        if announce:
            self._emit(ev.Started(state.spec.name, state.child.pid))
        return True

    def _check_exit(self, state: ChildState, now: float) -> str | None:
        """Handle a child that exited on its own. Returns a reason when the stack must stop."""
        if state.child is None or state.restart_at is not None:
            return None
        if state.restart_by is not None:
            return self._finish_restart(state, now)
        code = state.child.poll()
        if code is None:
            return None
        self._drain()  # its last words belong before the exit line
        self._emit(ev.Exited(state.spec.name, code, expected=False))
        if code == CONFIG_EXIT and self.reload:
            # A save broke the code (its error is above): keep the child down, the next good save restarts it.
            self._emit(
                ev.Note(f"{state.spec.name} cannot load the app: waiting for the next change", loud=True)
            )
            state.child, state.parked, state.ready = None, True, False
            return None
        if code == REFUSED_EXIT:
            # Another stack holds what this child needs (its last line names the holder).
            why = next((line for line in reversed(state.tail) if line.startswith(SAYS)), "")
            reason = why.removeprefix(SAYS) or "refused to start"
            self._emit(ev.Failed(state.spec.name, f"{reason}: not restarting it", tuple(state.tail)))
            self._exit_code = 2
            return f"{state.spec.name}: {reason}"
        if code == CONFIG_EXIT:
            # The launcher could not load the app (its line says why): a restart would fail the same way.
            said = any(line.startswith(SAYS) for line in state.tail)  # its verdict was shown: not again
            tail = () if said else tuple(state.tail)
            self._emit(ev.Failed(state.spec.name, "cannot load the app: not restarting it", tail))
            self._exit_code = 2
            return f"{state.spec.name} cannot load the app"
        decision = state.backoff.on_exit(now - state.started_at, was_ready=state.ready)
        if decision.give_up:
            failed = f"could not start {decision.failures} times in a row"
            essential = self._essential(state.spec)
            if essential:
                self._emit(
                    ev.Failed(state.spec.name, f"{failed}, giving up ({essential})", tuple(state.tail))
                )
                return f"{state.spec.name} {failed}"
            self._emit(
                ev.GaveUp(
                    state.spec.name,
                    f"{failed}, giving up on it; the rest of the stack keeps running "
                    f"(p419 restart {state.spec.name} brings it back)",
                    tuple(state.tail),
                )
            )
            state.child, state.ready, state.fatal = None, False, True
            return None
        state.ready = False
        state.restart_at = now + decision.delay
        self._emit(ev.Restarting(state.spec.name, decision.delay, decision.failures))
        return None

    def _essential(self, spec: ChildSpec) -> str | None:
        """Why the whole stack must stop without this child (None: it need not). The broker: nothing works
        without it. The last child of the project still running (the API when it is all that is configured):
        nothing useful would be left."""
        if spec.kind == "redis":
            return "the broker: nothing runs without it, so the stack stops"
        others = [s for s in self.states.values() if s.spec.kind != "redis" and s.spec is not spec]
        if not any(not s.fatal for s in others):
            return "nothing of the project would be left running, so the stack stops"
        return None

    def _probe_readiness(self, now: float, began: float) -> None:
        for state in self.states.values():
            if state.ready or state.awaiting_line or not state.running or now < state.next_probe:
                continue
            state.next_probe = now + PROBE_EVERY
            answer = self.probe(state.spec)
            if answer:
                state.ready = True
                warning = answer if isinstance(answer, str) else None
                self._emit(ev.ChildReady(state.spec.name, self.clock() - state.started_at, warning))
        if not self.stack_ready and all(s.ready or s.fatal for s in self.states.values()):
            self.stack_ready = True
            has_api = any(s.spec.kind == "api" for s in self.states.values())
            urls = (self.plan.api_url, f"{self.plan.api_url}/docs") if has_api else ()
            self._emit(ev.StackReady(self.clock() - began, urls))

    # --- stopping --------------------------------------------------------------------------------

    def _shutdown(self, code: int, reason: str) -> int:
        self._stopping = True
        began = self.clock()
        self._emit(ev.Stopping(reason))
        deadline = began + self.grace
        for wave in STOP_WAVES:
            group = [s for s in self.states.values() if s.spec.kind in wave and s.running]
            for state in group:
                assert state.child is not None
                state.child.stop()
            # Workers may use up the grace on a task in flight; Redis still gets a moment to stop cleanly (it
            # fsyncs its AOF on SIGTERM) rather than SIGKILL right after SIGTERM.
            group_deadline = max(deadline, self.clock() + min(self.grace, MIN_GROUP_GRACE))
            while any(s.running for s in group) and self.clock() < group_deadline and not self._force:
                self._wait(group_deadline, STOP_POLL)
            self._reap(group)
        if self._force:
            self._emit(ev.Stopping("second interrupt: killing now", force=True))
        # Whatever is left of each child's tree after the grace period (or a second Ctrl+C) is killed, and
        # every child is reported: the stop is not over until each one has been reaped.
        killed = [s for wave in STOP_WAVES for s in self.states.values() if s.spec.kind in wave and s.running]
        for state in self.states.values():
            if state.child is not None:
                state.child.kill_tree()
        kill_deadline = self.clock() + KILL_WAIT
        while any(s.running for s in killed) and self.clock() < kill_deadline:
            self._wait(kill_deadline, STOP_POLL)
        self._reap(killed, killed=True)
        self._reap(list(self.states.values()))
        self._drain()
        self._emit(ev.Stopped(self.clock() - began, tuple(s.spec.name for s in killed), forced=self._force))
        return code

    def _reap(self, group: list[ChildState], *, killed: bool = False) -> None:
        for state in group:
            if state.child is not None and state.restart_at is None:
                code = state.child.poll()
                if code is not None:
                    clean = not killed and stopped_cleanly(code)
                    self._emit(ev.Exited(state.spec.name, code, expected=True, clean=clean, killed=killed))
                    state.restart_at = float("inf")  # reported once; never restarted while stopping

    # --- waiting and output ----------------------------------------------------------------------

    def _wait(self, until: float | None, poll: float) -> None:
        """Block until a line arrives, `until`, or `poll` seconds at most; then handle every waiting line."""
        timeout = poll if until is None else min(poll, until - self.clock())
        timeout = max(timeout, MIN_WAIT)
        self.wake_ups += 1
        handled = 0
        if self.sleep is None:
            try:
                item = self.lines.get(timeout=timeout)
            except queue.Empty:
                return
            handled += self._line(*item)
        else:
            self.sleep(timeout)
        self._drain(handled)

    def _drain(self, handled: int = 0) -> None:
        while True:
            try:
                item = self.lines.get_nowait()
            except queue.Empty:
                break
            handled += self._line(*item)
        if handled:
            self._emit(ev.Drained())

    def _line(self, name: str, line: str) -> int:
        if (name, line) == WAKE:
            return 0
        state = self.states.get(name) or self.steps.get(name)
        if state is not None:
            state.tail.append(line)
            if state.awaiting_line and state.spec.ready is not None and state.spec.ready.said_by(line):
                state.said_ready, state.next_probe = True, 0.0  # probed in this same pass of the loop
        self._emit(ev.Output(name, line))
        return 1

    def _emit(self, event: ev.Event) -> None:
        """A listener that raises must not stop the control loop (and so the stop sequence): the first
        error is kept and raised by run() once the stack is stopped."""
        try:
            self.emit(event)
        except Exception as exc:
            if self._listener_error is None:
                self._listener_error = exc

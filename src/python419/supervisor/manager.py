"""The control loop of `p419 up`: start children in parallel, gate on readiness, restart with backoff,
give up on a crash loop, stop in order. It only decides and emits events; printing is someone else's job.

Time and processes are injected (clock, sleep, factory, probe), so every decision is testable with fakes.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from python419.launch import CONFIG_EXIT
from python419.supervisor import events as ev
from python419.supervisor.plan import STOP_ORDER, ChildSpec, Plan
from python419.supervisor.process import Child
from python419.supervisor.restart import Backoff

TAIL_LINES = 15
MIN_GROUP_GRACE = 2.0
PROBE_EVERY = 0.05


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

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None


class Manager:
    def __init__(
        self,
        plan: Plan,
        factory: Callable[[ChildSpec], Child],
        probe: Callable[[ChildSpec], bool],
        emit: Callable[[ev.Event], None],
        *,
        lines: queue.Queue[tuple[str, str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        stop_requested: Callable[[], bool] = lambda: False,
        grace: float = 10.0,
        ready_timeout: float = 30.0,
        tick: float = 0.05,
    ) -> None:
        self.plan, self.factory, self.probe, self.emit = plan, factory, probe, emit
        self.lines: queue.Queue[tuple[str, str]] = lines if lines is not None else queue.Queue()
        self.clock, self.sleep, self.stop_requested = clock, sleep, stop_requested
        self.grace, self.ready_timeout, self.tick = grace, ready_timeout, tick
        self.states = {spec.name: ChildState(spec) for spec in plan.children}
        self._stop_reason: str | None = None
        self._force = False
        self._exit_code = 1
        self.stack_ready = False

    # --- called from signal handlers -------------------------------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        """First call: orderly stop. Second call: kill at once."""
        if self._stop_reason is None:
            self._stop_reason = reason
        else:
            self._force = True

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> int:
        began = self.clock()
        for state in self.states.values():
            if not self._start(state):
                return self._shutdown(1, f"{state.spec.name} could not start")
        while True:
            self._idle()
            if self._stop_reason is None and self.stop_requested():
                self._stop_reason = "p419 down"
            if self._stop_reason is not None:
                return self._shutdown(0, self._stop_reason)
            now = self.clock()
            for state in self.states.values():
                failure = self._check_exit(state, now)
                if failure:
                    return self._shutdown(self._exit_code, failure)
                if state.restart_at is not None and now >= state.restart_at and not self._start(state):
                    return self._shutdown(1, f"{state.spec.name} could not start")
            self._probe_readiness(now, began)
            if not self.stack_ready and now - began > self.ready_timeout:
                late = next(s for s in self.states.values() if not s.ready)
                self.emit(
                    ev.Failed(late.spec.name, f"not ready after {self.ready_timeout:g}s", tuple(late.tail))
                )
                return self._shutdown(1, f"{late.spec.name} never got ready")

    def _start(self, state: ChildState) -> bool:
        state.restart_at = None
        state.ready = False
        if state.spec.ready_file is not None:
            state.spec.ready_file.unlink(missing_ok=True)
        try:
            state.child = self.factory(state.spec)
        except OSError as exc:  # not found, not executable, out of processes
            state.child = None
            self.emit(
                ev.Failed(state.spec.name, f"could not start {state.spec.argv[0]}: {exc.strerror or exc}")
            )
            return False
        state.started_at = self.clock()
        self.emit(ev.Started(state.spec.name, state.child.pid))
        return True

    def _check_exit(self, state: ChildState, now: float) -> str | None:
        """Handle a child that exited on its own. Returns a reason when the stack must stop."""
        if state.child is None or state.restart_at is not None:
            return None
        code = state.child.poll()
        if code is None:
            return None
        self._drain()  # its last words belong before the exit line
        self.emit(ev.Exited(state.spec.name, code, expected=False))
        if code == CONFIG_EXIT:
            # The launcher could not load the app (its line says why): a restart would fail the same way.
            self.emit(ev.Failed(state.spec.name, "cannot load the app: not restarting it", tuple(state.tail)))
            self._exit_code = 2
            return f"{state.spec.name} cannot load the app"
        decision = state.backoff.on_exit(now - state.started_at)
        if decision.give_up:
            reason = f"crashed {decision.failures} times in a row, giving up"
            self.emit(ev.Failed(state.spec.name, reason, tuple(state.tail)))
            return f"{state.spec.name} {reason}"
        state.ready = False
        state.restart_at = now + decision.delay
        self.emit(ev.Restarting(state.spec.name, decision.delay, decision.failures))
        return None

    def _probe_readiness(self, now: float, began: float) -> None:
        for state in self.states.values():
            if state.ready or not state.running or now < state.next_probe:
                continue
            state.next_probe = now + PROBE_EVERY
            if self.probe(state.spec):
                state.ready = True
                self.emit(ev.ChildReady(state.spec.name, self.clock() - state.started_at))
        if not self.stack_ready and all(s.ready for s in self.states.values()):
            self.stack_ready = True
            urls = (self.plan.api_url, f"{self.plan.api_url}/docs")
            self.emit(ev.StackReady(self.clock() - began, urls))

    # --- stopping --------------------------------------------------------------------------------

    def _shutdown(self, code: int, reason: str) -> int:
        self.emit(ev.Stopping(reason))
        deadline = self.clock() + self.grace
        for kind in STOP_ORDER:
            group = [s for s in self.states.values() if s.spec.kind == kind and s.running]
            for state in group:
                assert state.child is not None
                state.child.stop()
            # Workers may use up the grace on a task in flight; the API and Redis still get a moment to
            # stop cleanly (Redis fsyncs its AOF on SIGTERM) rather than SIGKILL right after SIGTERM.
            group_deadline = max(deadline, self.clock() + min(self.grace, MIN_GROUP_GRACE))
            while any(s.running for s in group) and self.clock() < group_deadline and not self._force:
                self._idle()
            self._reap(group)
        if self._force:
            self.emit(ev.Stopping("second interrupt: killing now", force=True))
        # Whatever is left of each child's tree after the grace period (or a second Ctrl+C) is killed.
        for state in self.states.values():
            if state.child is not None:
                state.child.kill_tree()
        self._reap(list(self.states.values()))
        self._drain()
        return code

    def _reap(self, group: list[ChildState]) -> None:
        for state in group:
            if state.child is not None and state.restart_at is None:
                code = state.child.poll()
                if code is not None:
                    self.emit(ev.Exited(state.spec.name, code, expected=True))
                    state.restart_at = float("inf")  # reported once; never restarted while stopping

    # --- output ----------------------------------------------------------------------------------

    def _idle(self) -> None:
        if self.sleep is None:
            try:
                self._line(*self.lines.get(timeout=self.tick))
            except queue.Empty:
                return
        else:
            self.sleep(self.tick)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._line(*self.lines.get_nowait())
            except queue.Empty:
                return

    def _line(self, name: str, line: str) -> None:
        state = self.states.get(name)
        if state is not None:
            state.tail.append(line)
        self.emit(ev.Output(name, line))

"""`p419 up` under systemd's notification protocol, for real: the test binds the NOTIFY_SOCKET itself (as systemd
does for a Type=notify unit), runs the bundled app's whole stack (Redis, the API, two workers, beat) and reads
what p419 says, when, and from which process (SO_PASSCRED: systemd's NotifyAccess=main accepts the main pid
only)."""

from __future__ import annotations

import json
import re
import signal
import socket
import statistics
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import stack_env
from tests.fake_telegram import FakeTelegram
from tests.procs import all_gone, free_port, wait_until
from tests.user_stacks import UserStack


@dataclass(frozen=True)
class Datagram:
    at: float  # time.monotonic() when it arrived
    pid: int  # the sender, from the kernel (SCM_CREDENTIALS)
    text: str

    def fields(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.text.splitlines() if "=" in line)


@dataclass
class NotifyListener:
    """A NOTIFY_SOCKET bound by the test, read on a thread. `on[FIELD]` runs in that thread as soon as a
    datagram with that assignment arrives (READY=1, STOPPING=1), before anything else is read."""

    address: str  # as systemd writes NOTIFY_SOCKET: a path, or @name (the abstract namespace)
    got: list[Datagram] = field(default_factory=list)
    on: dict[str, Callable[[Datagram], None]] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:] if self.address.startswith("@") else self.address)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:12])[0]
            datagram = Datagram(time.monotonic(), pid, data.decode())
            for assignment, react in self.on.items():
                if assignment in datagram.text.splitlines():
                    try:
                        react(datagram)
                    except BaseException as exc:  # reported by the test, not lost in this thread
                        self.errors.append(exc)
            self.got.append(datagram)

    def texts(self) -> list[str]:
        return [d.text for d in self.got]

    def first(self, assignment: str) -> int | None:
        return next((i for i, d in enumerate(self.got) if assignment in d.text.splitlines()), None)

    def wait_for(self, assignment: str, timeout: float) -> Datagram:
        assert wait_until(lambda: self.first(assignment) is not None, timeout), self.texts()
        index = self.first(assignment)
        assert index is not None
        return self.got[index]

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Callable[[str], NotifyListener]]:
    made: list[NotifyListener] = []

    def make(address: str) -> NotifyListener:
        made.append(NotifyListener(address))
        return made[-1]

    yield make
    for one in made:
        one.close()


class SystemdUp(UserStack):
    """The bundled app's `p419 up`, as systemd would start it (its environment and a SIGTERM to stop it)."""

    def __init__(self, tmp_path: Path, telegram: FakeTelegram, *args: str, **env: str) -> None:
        redis_url = f"redis://127.0.0.1:{free_port()}/0"
        super().__init__(
            tmp_path, "--grace", "8", *args, **stack_env(redis_url, tmp_path / "data", telegram, **env)
        )

    def state(self) -> dict:
        return json.loads((Path(self.env["P419_DATA_DIR"]) / "run" / "up.json").read_text())


@pytest.fixture
def systemd_up(tmp_path: Path, telegram: FakeTelegram, user_stacks) -> Callable[..., SystemdUp]:
    def make(*args: str, **env: str) -> SystemdUp:
        stack = SystemdUp(tmp_path, telegram, *args, **env)
        user_stacks.append(stack)
        return stack

    return make


def test_ready_only_once_the_api_answers_and_every_worker_is_ready(systemd_up, listener) -> None:
    """READY=1 on the manager's StackReady: at that moment the API answers (the test GETs it then) and the state
    file has every child running; STATUS lines named the children as they started; STOPPING=1 arrives before
    the first child is stopped; WATCHDOG=1 every WATCHDOG_USEC/2; every datagram is the main process's."""
    notify = listener(f"@p419-test-{uuid.uuid4().hex}")
    at_ready: dict = {}
    at_stopping: dict = {}
    up: SystemdUp | None = None

    def on_ready(_: Datagram) -> None:
        assert up is not None
        try:
            at_ready["api"] = httpx.get(f"{up.url}/health?workers=false", timeout=5).status_code
        except httpx.TransportError as exc:
            at_ready["api"] = repr(exc)
        at_ready["state"] = up.state()

    def on_stopping(_: Datagram) -> None:
        assert up is not None
        if at_stopping:
            return  # the first one counts (a second is refused below)
        children = up.state()["children"]
        alive = {}
        for name, child in children.items():
            try:
                alive[name] = psutil.Process(child["pid"]).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive[name] = False
        at_stopping["alive"] = alive
        at_stopping["log"] = up.output()

    notify.on["READY=1"] = on_ready
    notify.on["STOPPING=1"] = on_stopping
    up = systemd_up(
        "--workers", "2", "--pool", "solo", "--beat", NOTIFY_SOCKET=notify.address, WATCHDOG_USEC="400000"
    )
    ready = notify.wait_for("READY=1", 60)
    assert not notify.errors, notify.errors
    up.wait_ready()

    # The API answered at once, and every child was running (the workers ready, not only started).
    assert at_ready["api"] == 200, at_ready
    state = at_ready["state"]
    assert state["ready"] is True
    assert {name: child["state"] for name, child in state["children"].items()} == {
        name: "running" for name in ("redis", "api", "worker1", "worker2", "beat")
    }
    assert ready.fields()["STATUS"] == "ready: api, 2 workers, beat"
    # Before it: STATUS lines as the children started, and nothing said ready.
    before = notify.got[: notify.first("READY=1")]
    starting = [d.fields()["STATUS"] for d in before if d.fields().get("STATUS", "").startswith("starting")]
    assert starting and starting[-1] == "starting: redis, api, worker1, worker2, beat", starting
    assert not any("READY=1" in d.text for d in before)
    # `p419 status` agrees from another terminal.
    assert {name: c["state"] for name, c in up.children().items()} == {
        name: "running" for name in ("redis", "api", "worker1", "worker2", "beat")
    }

    # The watchdog: pings every 0.2 s (WATCHDOG_USEC=400000, pinged at half of it).
    time.sleep(1.5)
    pings = [d.at for d in notify.got if d.text == "WATCHDOG=1"]
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert len(pings) >= 5, notify.texts()
    assert 0.17 <= statistics.median(gaps) <= 0.25, gaps
    assert max(gaps) < 0.4, gaps  # never a whole WATCHDOG_USEC without a ping

    # systemctl stop: SIGTERM to the main process (KillMode=mixed), exit 0.
    kids = psutil.Process(up.proc.pid).children(recursive=True)
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(30) == 0, up.output()[-3000:]
    assert wait_until(lambda: all_gone(kids), 10)
    assert not notify.errors, notify.errors
    stopping = notify.first("STOPPING=1")
    assert stopping is not None, notify.texts()
    assert sum("STOPPING=1" in d.text.splitlines() for d in notify.got) == 1, notify.texts()
    # When STOPPING=1 arrived, no child had been stopped yet: all alive, and no "stopped" line in the log.
    assert all(at_stopping["alive"].values()), at_stopping["alive"]
    out = up.output()
    said_stopping = out.index("p419    | stopping: received SIGTERM")
    first_stop = min(out.index(f"p419    | {name} stopped") for name in ("api", "worker1", "worker2", "beat"))
    assert said_stopping < first_stop
    assert not re.search(r"\| +\w+ (stopped|killed)", at_stopping["log"]), at_stopping["log"][-2000:]
    assert notify.got[stopping].fields()["STATUS"] == "stopping: received SIGTERM"
    # The last word is the whole stop; then no more pings (the watchdog thread stopped with the stack).
    last_words = [d for d in notify.got if d.text != "WATCHDOG=1"]
    assert last_words[-1].fields()["STATUS"].startswith("stopped in ")
    stopped_at = last_words[-1].at
    assert not [d for d in notify.got if d.text == "WATCHDOG=1" and d.at > stopped_at + 0.05]
    # Every datagram came from p419 up itself (NotifyAccess=main), none from a child.
    assert {d.pid for d in notify.got} == {up.proc.pid}


def test_children_do_not_inherit_the_notify_socket(systemd_up, listener) -> None:
    """The protocol's variables are the main process's: a child that speaks it (gunicorn does) must not tell
    systemd READY=1 for the whole stack."""
    notify = listener(f"@p419-test-{uuid.uuid4().hex}")
    up = systemd_up("--workers", "1", "--pool", "solo", NOTIFY_SOCKET=notify.address, WATCHDOG_USEC="2000000")
    notify.wait_for("READY=1", 60)
    up.wait_ready()
    for name, child in up.state()["children"].items():
        environ = psutil.Process(child["pid"]).environ()
        assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} & set(environ), name
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(30) == 0


def test_a_notify_socket_nobody_listens_on_changes_nothing(systemd_up, tmp_path: Path) -> None:
    """Every send fails (no such socket): the stack gets ready, runs and stops as without systemd."""
    up = systemd_up(
        "--workers",
        "1",
        "--pool",
        "solo",
        NOTIFY_SOCKET=str(tmp_path / "nobody.sock"),
        WATCHDOG_USEC="100000",
    )
    up.wait_ready()
    assert httpx.get(f"{up.url}/health?workers=false", timeout=5).status_code == 200
    assert "Traceback" not in up.output()
    up.stop_and_check_nothing_left()

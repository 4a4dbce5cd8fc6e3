"""systemd's notification protocol (sd_notify, for `Type=notify` units): a listener of the manager's events.

systemd sets NOTIFY_SOCKET for a `Type=notify` service (and WATCHDOG_USEC, WATCHDOG_PID with `WatchdogSec=`).
`p419 up` then tells it, in datagrams on that socket:

- `STATUS=starting: redis, api, worker1` as children start (shown by `systemctl status`);
- `READY=1` on the manager's StackReady only: the API answers on its ready path and every worker is ready, so a
  unit ordered `After=` this one starts once the stack can take work, not once a process exists;
- `STOPPING=1` on Stopping, before the first child is asked to stop;
- `WATCHDOG=1` every WATCHDOG_USEC/2, from a daemon thread that ends with the stack (Stopped).

A report, never part of the control loop: a send that fails (no listener, a full queue, a closed socket) is
dropped, and nothing here raises into the manager. The decisions (the address, the interval, the words) are pure
functions; only `Notifier._send` touches a socket. Standard library only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

from python419.supervisor import events as ev

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
NOTIFY_VARIABLES = (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID)
SEND_TIMEOUT = (
    1.0  # a receiver whose queue is full: wait this long, then drop the message (never hang the loop)
)


@dataclass(frozen=True)
class NotifySettings:
    address: str | bytes  # a path, or (abstract namespace) bytes starting with NUL
    watchdog: float | None  # seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None: no watchdog


def socket_address(value: str) -> str | bytes | None:
    """NOTIFY_SOCKET as an AF_UNIX address: an absolute path, or `@name` for the abstract namespace (NUL +
    name, as sd_notify(3) reads it). Anything else (systemd's `vsock:` for VMs, a relative path) is None."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings: half of WATCHDOG_USEC (sd_watchdog_enabled(3)), when it is meant for this process
    (WATCHDOG_PID is ours or unset). None when there is no watchdog, or the value is not a positive number."""
    raw = environ.get(WATCHDOG_USEC, "")
    owner = environ.get(WATCHDOG_PID, "")
    if not raw.isdigit() or int(raw) <= 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(raw) / 1_000_000 / 2


def notify_settings(environ: Mapping[str, str], pid: int) -> NotifySettings | None:
    """What systemd asked of this process; None when it asked nothing (or an address we cannot use)."""
    address = socket_address(environ.get(NOTIFY_SOCKET, ""))
    if address is None:
        return None
    return NotifySettings(address, watchdog_interval(environ, pid))


def take_notify_environment(environ: MutableMapping[str, str]) -> None:
    """The variables are for the service's main process: the children do not inherit them (what sd_notify's
    `unset_environment` does). A server among the children that speaks the protocol (gunicorn does) would
    otherwise tell systemd READY=1 for the whole stack."""
    for name in NOTIFY_VARIABLES:
        environ.pop(name, None)


# --- the words -------------------------------------------------------------------------------------------


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def ready_summary(kinds: Mapping[str, str], ready: set[str], given_up: set[str]) -> str:
    """`ready: api, 2 workers, beat` (the broker is implied), in the plan's order of kinds."""
    have = [name for name in kinds if name in ready]
    parts: list[str] = []
    if any(kinds[n] == "api" for n in have):
        parts.append("api")
    workers = sum(1 for n in have if kinds[n] == "worker")
    if workers:
        parts.append(plural(workers, "worker"))
    parts += [kind for kind in ("beat", "flower") if any(kinds[n] == kind for n in have)]
    if not any(kind == "api" for kind in kinds.values()):
        parts.append("no API (workers only)")
    text = "ready: " + ", ".join(parts or ["nothing"])
    if given_up:
        text += "; gave up: " + ", ".join(n for n in kinds if n in given_up)
    return text


def one_line(text: str) -> str:
    """A STATUS= value is one line (the protocol separates assignments by newlines)."""
    return " ".join(text.split())


# --- the listener ----------------------------------------------------------------------------------------


class Notifier:
    """Listens to the manager's events and tells systemd (see the module's docstring).

    notifier = Notifier(settings, {"redis": "redis", "api": "api", "worker1": "worker"})
    notifier.handle(event)          # from the manager's emit; never raises
    """

    def __init__(self, settings: NotifySettings, kinds: Mapping[str, str]) -> None:
        self.settings = settings
        self.kinds = dict(kinds)  # child name -> kind, in the plan's order
        self.started: list[str] = []
        self.ready: set[str] = set()
        self.given_up: set[str] = set()
        self.stack_ready = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        try:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.settimeout(SEND_TIMEOUT)
        except OSError:
            self._socket = None  # nothing can be said; the stack runs anyway
        self._thread: threading.Thread | None = None
        if settings.watchdog is not None:
            self._thread = threading.Thread(target=self._watchdog, name="p419-watchdog", daemon=True)
            self._thread.start()

    def handle(self, event: ev.Event) -> None:
        try:
            message = self.message(event)
        except Exception:  # a report: a bug here must not reach the control loop
            message = None
        if message:
            self._send(message)
        if isinstance(event, ev.Stopped):
            self.close()

    def message(self, event: ev.Event) -> str | None:
        """The datagram for an event (None: nothing to say), keeping track of who started and is ready."""
        match event:
            case ev.Started(name, _):
                if name not in self.started:
                    self.started.append(name)
                self.given_up.discard(name)
                if not self.stack_ready:
                    return f"STATUS=starting: {', '.join(self.started)}"
                return f"STATUS={self._ready_line()}; {name} starting again"
            case ev.ChildReady(name, _):
                self.ready.add(name)
                return f"STATUS={self._ready_line()}" if self.stack_ready else None
            case ev.StackReady():
                self.stack_ready = True
                return f"READY=1\nSTATUS={self._ready_line()}"
            case ev.Exited(name, _, expected) if not expected:
                self.ready.discard(name)
                return None
            case ev.Restarting(name, delay, _):
                self.ready.discard(name)
                status = self._ready_line() if self.stack_ready else "starting"
                return f"STATUS={status}; {name} restarting in {delay:g}s"
            case ev.GaveUp(name, _, _):
                self.ready.discard(name)
                self.given_up.add(name)
                return f"STATUS={self._ready_line()}" if self.stack_ready else None
            case ev.Stopping(reason, force):
                if force:
                    return f"STATUS=stopping: {one_line(reason)}"
                return f"STOPPING=1\nSTATUS=stopping: {one_line(reason)}"
            case ev.Stopped(seconds, killed, _):
                gone = f"; killed: {', '.join(killed)}" if killed else ""
                return f"STATUS=stopped in {seconds:.2f}s{gone}"
        return None

    def _ready_line(self) -> str:
        return ready_summary(self.kinds, self.ready, self.given_up)

    def _watchdog(self) -> None:
        interval = self.settings.watchdog
        assert interval is not None
        while not self._stop.wait(interval):
            self._send("WATCHDOG=1")

    def _send(self, message: str) -> None:
        with self._lock:
            if self._socket is None:
                return
            with contextlib.suppress(OSError):  # no listener, a full queue past SEND_TIMEOUT: dropped
                self._socket.sendto(message.encode("utf-8", errors="replace"), self.settings.address)

    def close(self) -> None:
        """The stack is stopped: no more pings. Never raises."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(SEND_TIMEOUT + 1)
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def systemd_notifier(
    kinds: Mapping[str, str], environ: MutableMapping[str, str], pid: int
) -> Notifier | None:
    """The listener when systemd runs us as a `Type=notify` service (NOTIFY_SOCKET set), else None. Takes the
    protocol's variables out of `environ` (the children's base environment) either way."""
    settings = notify_settings(environ, pid)
    take_notify_environment(environ)
    return Notifier(settings, kinds) if settings is not None else None

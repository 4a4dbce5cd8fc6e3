"""api: can the API listen on P419_API_HOST:P419_API_PORT — free, already ours, or someone else's?

"Ours" is the running stack's own API child (from the state file of this data dir's `p419 up`): the process
that holds the port is that child, or one of its descendants. For the bundled app, its /health answering there
counts too (the app's own checks say so)."""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.platforms import Platform
from python419.ports import accepts, try_bind
from python419.runfiles import read_state, same_process

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def probe_host(host: str) -> str:
    """Where to reach a server listening on `host` (a wildcard address is reached on loopback)."""
    return WILDCARDS.get(host, host)


def find_listener_hint(platform: Platform, port: int) -> str:
    if platform == "windows":
        return f"netstat -ano | findstr :{port}"
    return f"lsof -nP -iTCP:{port} -sTCP:LISTEN"


@dataclass(frozen=True)
class Holder:
    """Who listens on the port, as far as this user may see."""

    pid: int | None  # None: the OS does not say
    name: str | None = None

    def __str__(self) -> str:
        return f"{self.name or 'a process'} (pid {self.pid})" if self.pid else "another program"


@dataclass(frozen=True)
class StackApi:
    """The running stack of this data dir, as its state file says: None (no `p419 up` runs), or its API child."""

    supervisor: int
    api_pid: int | None  # None: it runs no API (--only workers), or its API is not running now
    api_state: str | None = None


def port_holder(port: int) -> Holder:
    try:
        for conn in psutil.net_connections(kind="inet"):
            # pid 0 is no owner (Windows' idle process): Wine lists every listening socket with pid 0.
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    return Holder(conn.pid, psutil.Process(conn.pid).name())
                except psutil.Error:
                    return Holder(conn.pid)
    except (psutil.Error, OSError):
        pass
    return Holder(None)


def running_stack(run_dir: Path) -> StackApi | None:
    state = read_state(run_dir)
    if state is None:
        return None
    child = state["children"].get("api")
    if not child:
        return StackApi(state["pid"], None)
    proc = same_process(int(child.get("pid") or 0), child.get("create_time"))
    return StackApi(state["pid"], proc.pid if proc else None, child.get("state"))


def held_by(api_pid: int, holder: Holder, port: int) -> bool | None:
    """Is the port held by the process `api_pid` or one of its descendants? None: the OS does not say."""
    if holder.pid is not None:
        try:
            lineage = [holder.pid, *(p.pid for p in psutil.Process(holder.pid).parents())]
        except psutil.Error:
            lineage = [holder.pid]
        return api_pid in lineage
    # The whole table is not readable (macOS unprivileged, Wine): ask our own processes, which we may.
    try:
        tree = [psutil.Process(api_pid), *psutil.Process(api_pid).children(recursive=True)]
    except psutil.Error:
        return None
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    return None


def held_outcome(host: str, port: int, holder: Holder, platform: Platform, what: str) -> Outcome:
    """Pure: the port is taken and what answers there is not `what` (the app's API)."""
    who = (
        str(holder)
        if holder.pid
        else f"another program (not visible to this user; find it with: {find_listener_hint(platform, port)})"
    )
    return failed(
        f"{host}:{port} (P419_API_PORT) is held by {who}, which is not {what}",
        f"stop {holder if holder.pid else 'that program'}, or set P419_API_PORT to a free port",
    )


def stack_outcome(
    host: str, port: int, holder: Holder, stack: StackApi | None, ours: bool | None, platform: Platform
) -> Outcome | None:
    """Pure: the port is taken; is it by the running stack's own API? None: no stack runs to tell."""
    if stack is None:
        return None
    if stack.api_pid is None:
        state = f" ({stack.api_state})" if stack.api_state else ""
        who = str(holder) if holder.pid else "another program"
        if stack.api_state is None:
            return passed(
                f"{host}:{port} is held by {who}; the running p419 up (pid {stack.supervisor}) runs no API "
                "(p419 up --only), so it does not need that port"
            )
        return failed(
            f"{host}:{port} (P419_API_PORT) is held by {who}, while the running stack's API is not running"
            f"{state}: it cannot listen there",
            f"stop {who if holder.pid else 'that program'}; p419 up restarts its API (p419 status shows it)",
        )
    if ours is False:
        return failed(
            f"{host}:{port} (P419_API_PORT) is held by {holder}, not by the running stack's API (pid "
            f"{stack.api_pid}), which therefore cannot listen there",
            f"stop {holder}, then p419 restart api; or set P419_API_PORT to a free port",
        )
    target = probe_host(host)
    where = f"[{target}]:{port}" if ":" in target else f"{target}:{port}"
    if not accepts(target, port, timeout=1.0):
        return warned(
            f"the stack's API (pid {stack.api_pid}) holds {host}:{port} but does not accept connections "
            "(starting, or stuck)",
            "run `p419 doctor` again; if it persists: p419 restart api",
        )
    return passed(f"the stack's API (pid {stack.api_pid}) answers on {where}")


def unknown_holder_outcome(host: str, port: int, holder: Holder, platform: Platform) -> Outcome:
    """Pure: the port is taken, no `p419 up` of this project runs, so `p419 up` could not start the API."""
    who = (
        str(holder)
        if holder.pid
        else f"another program (not visible to this user; find it with: {find_listener_hint(platform, port)})"
    )
    return failed(
        f"{host}:{port} (P419_API_PORT) is held by {who}, and no p419 up of this project runs: "
        "p419 up could not start the API there",
        f"stop {holder if holder.pid else 'that program'} (an API started by hand: p419 up starts it), "
        "or set P419_API_PORT to a free port",
    )


def bind_error_outcome(host: str, port: int, error: OSError) -> Outcome:
    if error.errno == errno.EADDRNOTAVAIL:
        return failed(
            f"P419_API_HOST={host} is not an address of this machine ({error.strerror})",
            "set P419_API_HOST=127.0.0.1 (or 0.0.0.0 to listen on every interface)",
        )
    if error.errno == errno.EACCES:
        return failed(f"no permission to listen on port {port}", "use P419_API_PORT above 1023, e.g. 8000")
    return failed(
        f"cannot listen on {host}:{port}: {error}", "set P419_API_HOST/P419_API_PORT to a usable address"
    )


def in_use(error: OSError) -> bool:
    return (
        error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1))
        or getattr(error, "winerror", 0) == 10048
    )


def check_api(ctx: Context) -> Outcome:
    host, port = ctx.config.api_host, ctx.config.api_port
    try:
        error = try_bind(host, port)
    except socket.gaierror as exc:
        return failed(f"P419_API_HOST={host} does not resolve ({exc})", "set P419_API_HOST=127.0.0.1")
    if error is None:
        return passed(f"{host}:{port} is free: the API can listen there")
    if not in_use(error):
        return bind_error_outcome(host, port, error)
    if ctx.plugin is not None:
        answered = ctx.plugin.api_answers(probe_host(host), port)
        if answered is not None:
            return answered
    holder = port_holder(port)
    stack = running_stack(ctx.config.run_dir)
    ours = held_by(stack.api_pid, holder, port) if stack and stack.api_pid else None
    if ctx.plugin is not None:
        if stack and ours:
            return warned(
                f"the stack's API (pid {stack.api_pid}) holds {host}:{port}, but {ctx.plugin.api_name} does not "
                "answer there as it should (starting, or stuck)",
                "run `p419 doctor` again; if it persists, see the api lines of p419 up, then p419 restart api",
            )
        return held_outcome(host, port, holder, ctx.platform, ctx.plugin.api_name)
    found = stack_outcome(host, port, holder, stack, ours, ctx.platform)
    return found or unknown_holder_outcome(host, port, holder, ctx.platform)

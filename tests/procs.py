"""Real processes for the tests: redis-server, `p419 worker`, uvicorn. Each logs to a file we can search."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import redis

REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(interval)
    return False


def kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    for proc in [*parent.children(recursive=True), parent]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs([parent], timeout=5)


def all_gone(procs: list[psutil.Process]) -> bool:
    return not [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()


# A stand-in supervisor: starts python419's guard around a command, prints the command's pid and the guard's,
# then waits to be killed (the guard's watchdog must then take the command down).
GUARDED = """
import subprocess, sys, time, psutil
guard = subprocess.Popen([sys.executable, "-m", "python419.supervisor.guard", *sys.argv[1:]])
while not psutil.Process(guard.pid).children():
    time.sleep(0.05)
print(psutil.Process(guard.pid).children()[0].pid, guard.pid, flush=True)
time.sleep(120)
"""


def guarded_by_a_stand_in(command: list[str]) -> tuple[subprocess.Popen[str], int, int]:
    """The stand-in supervisor running `command` under the guard, the command's pid and the guard's."""
    supervisor = subprocess.Popen(
        [sys.executable, "-c", GUARDED, *command], stdout=subprocess.PIPE, text=True
    )
    assert supervisor.stdout is not None
    command_pid, guard_pid = map(int, supervisor.stdout.readline().split())
    return supervisor, command_pid, guard_pid


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                kill_tree(self.pid)
        self.popen.wait(5)

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(5)


def spawn(name: str, argv: list[str], env: dict[str, str], logdir: Path, cwd: Path | None = None) -> Proc:
    log = logdir / f"{name}.log"
    handle = log.open("ab")
    popen = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd)
    handle.close()
    return Proc(name, popen, log)


@dataclass
class RedisServer:
    port: int
    logdir: Path
    binds: tuple[str, ...] = ("127.0.0.1",)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        argv = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            *self.binds,
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.proc = spawn(f"redis-{self.port}", argv, dict(os.environ), self.logdir)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        assert wait_until(client.ping, 10), f"redis-server did not start: {self.proc.output()}"
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()


@dataclass
class Stack:
    """One worker and one API sharing a broker, a data dir and a fake Telegram."""

    env: dict[str, str]
    logdir: Path
    api_port: int
    procs: list[Proc] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_worker(self, hostname: str = "w1@%h", pool: str = "solo") -> Proc:
        ready = self.logdir / f"{hostname.split('@')[0]}.ready"
        ready.unlink(missing_ok=True)
        env = {**self.env, "P419_STACK_READY_FILE": str(ready)}
        argv = [sys.executable, "-m", "python419", "worker", "--pool", pool, "--hostname", hostname]
        proc = spawn(hostname.split("@")[0], argv, env, self.logdir, cwd=self.logdir)
        self.procs.append(proc)
        assert wait_until(ready.exists, 30), f"worker not ready:\n{proc.output()[-3000:]}"
        return proc

    def start_api(self) -> Proc:
        argv = [sys.executable, "-m", "uvicorn", "python419.products.api:app", "--host", "127.0.0.1"]
        proc = spawn("api", [*argv, "--port", str(self.api_port)], self.env, self.logdir, cwd=self.logdir)
        self.procs.append(proc)
        ok = wait_until(lambda: httpx.get(f"{self.api_url}/health", timeout=2).status_code in (200, 503), 30)
        assert ok, f"API not ready:\n{proc.output()[-3000:]}"
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def all_output(self) -> str:
        return "\n".join(p.output() for p in self.procs)

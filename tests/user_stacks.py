"""`p419 up` on a copy of a fixture project (tests/projects/), driven as a user would from the shell."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

from tests.conftest import clean_environ
from tests.procs import all_gone, free_port, kill_tree, wait_until

PROJECTS = Path(__file__).parent / "projects"
READY = re.compile(r"^p419 +\| ready in", re.M)


def copy_project(tmp_path: Path, name: str, config: str | None = None) -> Path:
    root = tmp_path / name
    shutil.copytree(PROJECTS / name, root)
    if config is not None:
        (root / "p419.toml").write_text(config)
    return root


def p419(cwd: Path, env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "python419", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class UserStack:
    """A running `p419 up` in a project folder, with its own API port and Redis port."""

    ready_timeout = 60.0

    def __init__(self, root: Path, *args: str, command: list[str] | None = None, **env: str) -> None:
        """`command`: how p419 is called (default: this interpreter's python419, as an installed p419 is)."""
        self.root = root
        self.command = command or [sys.executable, "-m", "python419"]
        self.api_port = free_port()
        self.env = {**clean_environ(), "P419_API_PORT": str(self.api_port), **env}
        self.env.setdefault("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
        self.log = root / f"up-{time.monotonic_ns()}.log"
        with self.log.open("wb") as handle:
            self.proc = subprocess.Popen(
                [*self.command, "up", "--grace", "10", *args],
                cwd=root,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        found = wait_until(lambda: re.search(pattern, self.output(), re.M) is not None, timeout)
        assert found, f"never saw {pattern!r}:\n{self.output()[-5000:]}"

    def wait_ready(self) -> None:
        ok = wait_until(
            lambda: bool(READY.search(self.output())) or self.proc.poll() is not None, self.ready_timeout
        )
        assert ok and self.proc.poll() is None, f"not ready:\n{self.output()[-5000:]}"

    def p419(self, *args: str) -> subprocess.CompletedProcess[str]:
        return p419(self.root, self.env, *args)

    def children(self) -> dict[str, dict]:
        done = self.p419("status", "--json")
        assert done.returncode == 0, done.stderr
        return {c["name"]: c for c in json.loads(done.stdout)["children"]}

    def answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/", timeout=2).status_code < 500
        except httpx.TransportError:
            return False

    def result(self, path: str, done: Callable[[dict], bool], timeout: float = 30) -> dict:
        """Poll a GET until `done(body)`; an API restarting (a reload) is waited out."""
        body: dict = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = httpx.get(f"{self.url}{path}", timeout=5).json()
            except httpx.TransportError:
                body = {}
            if body and done(body):
                return body
            time.sleep(0.1)
        raise AssertionError(f"no result at {path}: {body}\n{self.output()[-5000:]}")

    def stop_and_check_nothing_left(self) -> None:
        """Ctrl+C: exit 130, and every process the stack had is gone."""
        kids = psutil.Process(self.proc.pid).children(recursive=True)
        assert kids, "the stack had no children"
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(30) == 130, self.output()[-3000:]
        assert wait_until(lambda: all_gone(kids), 10), [p.cmdline() for p in kids if p.is_running()]

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)

"""`p419 up` for real: real Redis (or the embedded broker), uvicorn and workers, driven like a user would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.conftest import clean_environ, stack_env
from tests.fake_telegram import FakeTelegram
from tests.procs import RedisServer, all_gone, free_port, wait_until
from tests.user_stacks import UserStack


class Up(UserStack):
    """A running `p419 up` of the bundled app, on a fake Telegram, and what a user can see of it."""

    ready_timeout = 30.0

    def __init__(self, tmp_path: Path, telegram: FakeTelegram, *args: str, **env: str) -> None:
        redis_url = f"redis://127.0.0.1:{free_port()}/0"
        super().__init__(
            tmp_path, "--grace", "8", *args, **stack_env(redis_url, tmp_path / "data", telegram, **env)
        )

    def pid_of(self, name: str) -> int:
        return int(self.children()[name]["pid"])

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def finish(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def deliver(self, telegram: FakeTelegram, timeout: float = 30) -> str:
        marker = f"up-{uuid.uuid4().hex[:8]}"
        response = httpx.post(f"{self.url}/products", json={"name": marker, "price": 1}, timeout=10)
        assert response.status_code == 201, response.text
        assert telegram.wait_for(lambda: telegram.delivered(marker), timeout), (
            f"not delivered:\n{self.output()[-3000:]}"
        )
        return marker


@pytest.fixture
def up_factory(tmp_path: Path, telegram: FakeTelegram) -> Iterator:
    started: list[Up] = []

    def make(*args: str, **env: str) -> Up:
        started.append(Up(tmp_path, telegram, *args, **env))
        return started[-1]

    yield make
    for up in started:  # never leave a stack behind, even when a test failed
        up.kill()


def test_up_on_redis_delivers_and_ctrl_c_leaves_nothing(up_factory, telegram: FakeTelegram) -> None:
    up = up_factory("--workers", "1", "--pool", "solo")
    up.wait_ready()
    out = up.output()
    assert "starting" in out and "redis-server" in out
    for name in ("redis", "api", "worker1"):
        assert f"p419    | {name} ready in" in out
    assert "worker1 | " in out and "api     | " in out  # aligned, prefixed child output
    up.deliver(telegram)
    kids = up.descendants()
    assert len(kids) >= 3
    assert up.finish(signal.SIGINT) == 130  # Ctrl+C: 128 + SIGINT, as shells and honcho report it
    assert wait_until(lambda: all_gone(kids), 10), [p.pid for p in kids if p.is_running()]
    out = up.output()
    # the API and the worker stop together (the worker warmly), the broker once both are gone
    assert max(out.index("worker1 stopped"), out.index("api stopped")) < out.index("redis stopped")
    # Redis was asked to SHUTDOWN (at once) rather than signalled (acted on at its next cron tick)
    assert "Received SIGTERM" not in out and "Redis is now ready to exit" in out
    assert "exit code" not in out, "a child that stopped on our SIGTERM stopped cleanly"
    assert "p419    | stopped in " in out
    logs = Path(up.env["P419_DATA_DIR"]) / "logs"
    assert "Uvicorn running" in (logs / "api.log").read_text()
    assert "ready." in (logs / "worker1.log").read_text()


def test_up_on_the_embedded_broker(up_factory, telegram: FakeTelegram) -> None:
    up = up_factory("--broker", "embedded", "--workers", "2", "--pool", "solo")
    up.wait_ready()
    assert "embedded broker" in up.output() and "redis-server" not in up.output()
    up.deliver(telegram)
    health = httpx.get(f"{up.url}/health", timeout=5).json()
    assert health["broker"]["kind"] == "embedded" and len(health["workers"]["names"]) == 2
    # a second terminal knows nothing of the embedded broker: `send` follows the running stack
    sent = up.p419("send", f"by-hand-{uuid.uuid4().hex[:6]}", "--timeout", "20")
    assert sent.returncode == 0 and sent.stdout.startswith("success"), sent.stdout + sent.stderr
    kids = up.descendants()
    down = up.p419("down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert up.proc.wait(10) == 0
    assert wait_until(lambda: all_gone(kids), 10)


def test_killed_children_come_back(up_factory, telegram: FakeTelegram) -> None:
    up = up_factory("--workers", "2", "--pool", "solo")
    up.wait_ready()
    old_worker, old_api = up.pid_of("worker1"), up.pid_of("api")
    os.kill(old_worker, signal.SIGKILL)
    assert wait_until(lambda: up.pid_of("worker1") != old_worker, 15)
    os.kill(old_api, signal.SIGKILL)
    assert wait_until(lambda: up.pid_of("api") != old_api, 15)
    assert wait_until(lambda: httpx.get(f"{up.url}/health", timeout=2).status_code == 200, 20)
    table = up.p419("status")
    assert table.returncode == 0 and all(name in table.stdout for name in ("api", "worker1", "worker2"))
    status = up.children()
    assert status["worker1"]["restarts"] == 1 and status["api"]["restarts"] == 1
    assert status["worker2"]["restarts"] == 0
    assert "worker1 exited unexpectedly with code -9" in up.output()
    assert "restarting worker1 in 0.5s" in up.output()
    assert wait_until(lambda: status_state(up, "worker1") == "running", 20)
    up.deliver(telegram)
    assert up.finish() == 130


def status_state(up: Up, name: str) -> str:
    return str(up.children()[name]["state"])


def test_five_kills_of_a_ready_worker_never_stop_the_stack(up_factory, telegram: FakeTelegram) -> None:
    """A worker that became ready and is killed again and again is restarted each time (with backoff): the
    stack stays up and every product is delivered (it used to give up after five and stop everything)."""
    up = up_factory("--workers", "2", "--pool", "solo")
    up.wait_ready()
    for _ in range(6):
        assert wait_until(lambda: status_state(up, "worker1") == "running", 40), up.output()[-3000:]
        pid = up.pid_of("worker1")
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda p=pid: up.pid_of("worker1") != p, 40), up.output()[-3000:]
        up.deliver(telegram)
    assert wait_until(lambda: status_state(up, "worker1") == "running", 40), up.output()[-3000:]
    assert up.proc.poll() is None and "giving up" not in up.output()
    assert up.children()["worker1"]["restarts"] == 6
    assert up.finish() == 130


def test_a_worker_that_cannot_start_is_given_up_alone_then_revived(tmp_path: Path, user_stacks) -> None:
    """Five exits before ready: that worker is fatal (status and console), the API still answers, and
    `p419 restart worker1` brings it back once the cause is gone."""
    from tests.user_stacks import copy_project

    root = copy_project(tmp_path, "flat", 'app_dir = "project"\napi = "main:app"\ncelery = "worker.celery"\n')
    worker = root / "project" / "worker.py"
    blocker = root / "no-worker-today"
    blocker.write_text("x")
    guard = (
        f"import os, sys\nif 'worker' in sys.argv and os.path.exists({str(blocker)!r}):\n    sys.exit(1)\n"
    )
    worker.write_text(guard + worker.read_text())
    up = UserStack(root, "--pool", "solo")
    user_stacks.append(up)
    up.wait_ready()  # ready without it: the API and Redis
    up.wait_for(r"worker1 could not start 5 times in a row, giving up on it; the rest of the stack keeps", 60)
    assert up.children()["worker1"]["state"] == "fatal"
    assert httpx.get(f"{up.url}/", timeout=5).json() == {"hello": "flat"} and up.proc.poll() is None
    blocker.unlink()
    done = up.p419("restart", "worker1")
    assert done.returncode == 0 and "worker1 restarted" in done.stdout, done.stdout + done.stderr
    task_id = httpx.post(f"{up.url}/tasks", json={"type": 1}, timeout=10).json()["task_id"]
    assert (
        up.result(f"/tasks/{task_id}", lambda b: b["task_status"] == "SUCCESS")["task_result"]["slept"] == 0.1
    )
    up.stop_and_check_nothing_left()


def test_a_held_api_port_is_named_before_anything_starts(up_factory) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        up = up_factory("--pool", "solo", P419_API_PORT=str(port))
        code = up.proc.wait(30)
    out = up.output()
    assert code == 1, out
    assert f"api port 127.0.0.1:{port} is held by " in out and f"(pid {os.getpid()})" in out
    assert "set P419_API_PORT" in out and "started" not in out and "Traceback" not in out


def test_supervisor_killed_hard_leaves_no_child(up_factory) -> None:
    up = up_factory("--workers", "2", "--pool", "solo")
    up.wait_ready()
    kids = up.descendants()
    ports = [int(up.env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]), up.api_port]
    up.proc.kill()
    up.proc.wait(5)
    assert wait_until(lambda: all_gone(kids), 15), [p.cmdline() for p in kids if p.is_running()]
    for port in ports:  # and nothing holds their ports
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_running_redis_is_reused_and_left_running(up_factory, tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path).start()
    try:
        up = up_factory("--pool", "solo", REDIS_URL=server.url)
        up.wait_ready()
        assert "already answers" in up.output() and "reusing it" in up.output()
        assert list(up.children()) == ["api", "worker1"]
        assert up.finish(signal.SIGTERM) == 0  # SIGTERM stops the stack like Ctrl+C
        assert redis.Redis(port=server.port).ping()
    finally:
        server.stop()


def test_a_child_that_never_gets_ready_fails_with_its_last_lines(up_factory) -> None:
    # An API command that prints and never listens: everything else gets ready, the API is named.
    never = f"{sys.executable} -c \"print('starting up, honest'); import time; time.sleep(60)\""
    up = up_factory(
        "--pool",
        "solo",
        "--ready-timeout",
        "4",
        "--api-command",
        never,
        "--celery",
        "python419.products.tasks.celery_app",
    )
    assert up.proc.wait(40) == 1
    out = up.output()
    [failure] = [line for line in out.splitlines() if "not ready after 4s, last lines:" in line]
    name = failure.split("| ", 1)[1].split()[0]
    assert name == "api" and "api     | starting up, honest" in out
    after = out.split(failure, 1)[1].lstrip("\n").splitlines()
    assert after and after[0].startswith(f"{name.ljust(7)} | "), "its last log lines follow, under its name"
    assert "p419    | stopping:" in out


def test_redis_started_by_up_requires_the_password_from_the_url(up_factory) -> None:
    port = free_port()
    up = up_factory("--pool", "solo", REDIS_URL=f"redis://:pw-{port}@127.0.0.1:{port}/0")
    up.wait_ready()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    assert redis.Redis(port=port, password=f"pw-{port}").ping()
    redis_pid = up.pid_of("redis")
    assert f"pw-{port}" not in " ".join(psutil.Process(redis_pid).cmdline())
    assert f"pw-{port}" not in up.p419("up", "--dry-run").stdout
    assert up.finish() == 130


def test_redis_password_asked_for_is_generated_and_the_other_verbs_follow(
    up_factory, telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    up = up_factory("--pool", "solo", "--redis-password", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    up.wait_ready()
    # With --redis-password, another local process needs the password to queue a task.
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()
    password_file = tmp_path / "data" / "redis" / "password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert redis.Redis(port=port, password=password_file.read_text().strip()).ping()
    # p419 send in another terminal follows the running stack, password included; delivered for real.
    done = up.p419("send", "with-a-password", "--timeout", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert telegram.wait_for(lambda: telegram.delivered("with-a-password"), 10)
    assert password_file.read_text().strip() not in up.output() + done.stdout + done.stderr
    assert up.finish() == 130
    assert not (tmp_path / "data" / "run" / "redis-url").exists()


def test_a_percent_encoded_password_is_the_one_clients_use(up_factory) -> None:
    port = free_port()
    up = up_factory("--pool", "solo", REDIS_URL=f"redis://:p%40ssWord{port}@127.0.0.1:{port}/0")
    up.wait_ready()  # it used to give up after 30 s: requirepass held the encoded text
    assert redis.Redis(port=port, password=f"p@ssWord{port}").ping()
    assert up.finish() == 130


def test_status_and_down_without_a_running_stack(tmp_path: Path) -> None:
    env = {**clean_environ(), "P419_DATA_DIR": str(tmp_path / "nothing")}
    for verb in ("status", "down"):
        done = subprocess.run(
            [sys.executable, "-m", "python419", verb], env=env, capture_output=True, text=True
        )
        assert done.returncode == 1 and "not running" in done.stderr


def test_dry_run_windows_plan_on_any_os(tmp_path: Path) -> None:
    env = {**clean_environ(), "P419_PLATFORM": "windows", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    done = subprocess.run(
        [sys.executable, "-m", "python419", "up", "--dry-run", "--workers", "3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    workers = [line for line in done.stdout.splitlines() if line.startswith("worker") and "launch" in line]
    assert len(workers) == 3 and all("--pool=solo" in w for w in workers)
    assert "stop: ctrl-break; orphans: job-object; creation flags: 0x200" in done.stdout
    assert "P419_STACK_BROKER=" in done.stdout and not (tmp_path / ".p419" / "run" / "up.json").exists()


def read_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["cat", str(path)], preexec_fn=lambda: os.setuid(65534), capture_output=True, text=True, timeout=10
    )


@pytest.mark.skipif(
    os.name == "nt" or os.geteuid() != 0, reason="reads as another user: needs root to switch"
)
def test_the_data_dir_is_its_owners_only_whatever_the_umask(telegram: FakeTelegram) -> None:
    """Under umask 022 the data dir is 0700 and what p419, Redis and the bundled app write there is 0600:
    user `nobody` can read neither the products database nor a log (it could, at 0755/0644)."""
    import shutil
    import tempfile

    old = os.umask(0o022)
    root = Path(tempfile.mkdtemp(prefix="p419-perm-"))  # pytest's tmp_path is 0700: nobody could not look
    try:
        root.chmod(0o755)
        control = root / "readable.txt"
        control.write_text("anyone")
        assert read_as_nobody(control).stdout == "anyone"  # the check can see a readable file
        up = Up(root, telegram, "--workers", "1", "--pool", "solo")
    finally:
        os.umask(old)
    try:
        up.wait_ready()
        up.deliver(telegram)
        data = Path(up.env["P419_DATA_DIR"])
        files = [
            data / "p419.db",
            data / "p419.db-wal",
            data / "logs" / "worker1.log",
            data / "run" / "up.json",
        ]
        files += list((data / "redis").rglob("*.aof"))
        assert (data / "redis").is_dir() and len(files) > 4, sorted(p.name for p in data.rglob("*"))
        assert oct(data.stat().st_mode & 0o777) == "0o700"
        for path in files:
            assert oct(path.stat().st_mode & 0o777) == "0o600", path
        for path in (data / "p419.db", data / "logs" / "worker1.log"):
            read = read_as_nobody(path)
            assert read.returncode != 0 and "Permission denied" in read.stderr, read.stderr
        assert up.finish() == 130
    finally:
        up.kill()
        shutil.rmtree(root, ignore_errors=True)

"""`p419 worker` and `p419 send` as a user runs them: real subprocesses, real exit codes."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import TOKEN, clean_environ
from tests.fake_telegram import FakeTelegram
from tests.procs import free_port


def p419(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "python419", *args],
        env=env or clean_environ(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_worker_dry_run_on_windows_shows_solo(tmp_path: Path) -> None:
    env = {**clean_environ(), "P419_PLATFORM": "windows"}
    done = p419("worker", "--dry-run", "--pool", "prefork", "--concurrency", "4", env=env, cwd=tmp_path)
    assert done.returncode == 0
    assert "pool=solo" in done.stdout and "fork()" in done.stdout
    command = done.stdout.strip().splitlines()[-1]
    # the same command `p419 up` runs for a worker: the plain celery command line behind the launcher
    assert "launch/__main__.py celery -A python419.products.tasks.celery_app worker --pool=solo" in command
    assert "prefork" not in command
    assert "not reliable on Windows" in done.stderr and "p419 up --workers N" in done.stderr


def test_worker_dry_run_on_linux_honours_pool(tmp_path: Path) -> None:
    env = {**clean_environ(), "P419_PLATFORM": "linux"}
    done = p419(
        "worker",
        "--dry-run",
        "--pool",
        "threads",
        "--concurrency",
        "4",
        "--hostname",
        "a@b",
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "--pool=threads --loglevel=info" in done.stdout
    assert "--concurrency=4 --hostname=a@b" in done.stdout


def test_worker_warns_that_solo_ignores_concurrency(tmp_path: Path) -> None:
    env = {**clean_environ(), "P419_PLATFORM": "linux"}
    done = p419("worker", "--dry-run", "--pool", "solo", "--concurrency", "4", env=env, cwd=tmp_path)
    assert done.returncode == 0 and "--concurrency=1" in done.stdout
    assert "concurrency 4 has no effect on the solo pool" in done.stderr


def test_worker_rejects_unknown_pool(tmp_path: Path) -> None:
    done = p419("worker", "--pool", "forkbomb", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_a_pool_that_is_not_installed_is_refused_in_the_parser(tmp_path: Path) -> None:
    """eventlet is not in the test environment (gevent is): refused by the parser, with the install command,
    instead of five worker tracebacks and a give-up after 15 s."""
    env = {**clean_environ(), "P419_PLATFORM": "linux"}
    for verb in ("worker", "up"):
        done = p419(verb, "--pool", "eventlet", "--dry-run", env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "the eventlet pool is not installed here: pip install eventlet" in done.stderr
        assert "Traceback" not in done.stderr
    done = p419("worker", "--pool", "gevent", "--dry-run", env=env, cwd=tmp_path)
    assert done.returncode == 0 and "--pool=gevent" in done.stdout, done.stderr


def test_send_through_the_running_worker(stack, telegram: FakeTelegram, tmp_path: Path) -> None:
    marker = f"manual-{uuid.uuid4().hex[:6]}"
    done = p419("send", marker, "--product-id", "77", "--timeout", "20", env=stack.env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("success in ") and marker in done.stdout
    [call] = telegram.delivered(marker)
    assert "ID: 77" in call.payload["text"]
    assert TOKEN not in done.stdout + done.stderr


def test_send_reports_permanent_failure_with_exit_1(stack, telegram: FakeTelegram, tmp_path: Path) -> None:
    marker = f"refused-{uuid.uuid4().hex[:6]}"
    telegram.script(marker, ["401"])
    done = p419("send", marker, "--timeout", "20", env=stack.env, cwd=tmp_path)
    assert done.returncode == 1 and "failed" in done.stderr and "Unauthorized" in done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_send_no_wait_prints_the_task_id(stack, tmp_path: Path) -> None:
    done = p419("send", "later", "--no-wait", env=stack.env, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("queued task ")


def test_send_direct_needs_no_broker(telegram: FakeTelegram, tmp_path: Path) -> None:
    marker = f"direct-{uuid.uuid4().hex[:6]}"
    env = {
        **clean_environ(),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_CHAT_ID": telegram.chat_id,
        "TELEGRAM_API_URL": telegram.url,
    }
    done = p419("send", marker, "--direct", env=env, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("success")
    assert len(telegram.delivered(marker)) == 1


def test_send_direct_without_token_is_a_dry_run(tmp_path: Path) -> None:
    done = p419("send", "<b>x</b>", "--direct", cwd=tmp_path)
    assert (
        done.returncode == 0 and done.stdout.startswith("dry-run") and "&lt;b&gt;x&lt;/b&gt;" in done.stdout
    )


def test_send_with_broker_down_fails_fast_and_clearly(tmp_path: Path) -> None:
    env = {**clean_environ(), "REDIS_URL": f"redis://:pw-secret@127.0.0.1:{free_port()}/0"}
    started = time.monotonic()
    done = p419("send", "x", "--timeout", "3", env=env, cwd=tmp_path)
    assert time.monotonic() - started < 6
    assert done.returncode == 1
    assert "broker unreachable" in done.stderr and "Traceback" not in done.stderr
    assert "pw-secret" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_send_without_a_worker_times_out_with_a_hint(redis_server, tmp_path: Path) -> None:
    env = {**clean_environ(), "REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/9"}
    done = p419("send", "x", "--timeout", "1.5", env=env, cwd=tmp_path)
    assert done.returncode == 1 and "is a worker running?" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_send_missing_argument_is_usage_error(tmp_path: Path) -> None:
    done = p419("send", cwd=tmp_path)
    assert done.returncode == 2 and "Missing argument" in done.stderr


def test_worker_runs_the_command_up_runs_for_the_first_group(tmp_path: Path) -> None:
    """One function builds a worker's command: a pool and concurrency from the config reach `p419 worker`
    exactly as they reach `p419 up` (it showed --pool=prefork and no concurrency)."""
    (tmp_path / "tasks.py").write_text("from celery import Celery\ncelery = Celery('t')\n")
    (tmp_path / "p419.toml").write_text(
        'celery = "tasks.celery"\n\n[[workers]]\nname = "io"\npool = "threads"\nconcurrency = 4\nqueues = ["q1"]\n'
    )
    env = {**clean_environ(), "P419_PLATFORM": "linux"}
    up = p419("up", "--dry-run", env=env, cwd=tmp_path)
    worker = p419("worker", "--dry-run", "--hostname", "io1@%h", env=env, cwd=tmp_path)
    assert up.returncode == 0 and worker.returncode == 0, up.stderr + worker.stderr
    [from_up] = [line.split(": ", 1)[1] for line in up.stdout.splitlines() if line.startswith("io1: ")]
    from_worker = worker.stdout.strip().splitlines()[-1]
    assert from_worker == from_up
    assert "--pool=threads" in from_worker and "--concurrency=4" in from_worker and "-Q q1" in from_worker
    assert "pool in p419.toml threads" in worker.stdout  # where the pool came from, not "--pool"

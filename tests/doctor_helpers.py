"""Helpers for test_doctor.py: run `p419 doctor` for real, and build the broken things it must diagnose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from tests.conftest import clean_environ
from tests.procs import REDIS_SERVER, Proc, free_port, spawn, wait_until


@dataclass
class DoctorRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def report(self) -> dict[str, dict[str, Any]]:
        """The --json output by check id (and proof that stdout is exactly one JSON document)."""
        checks = json.loads(self.stdout)
        assert isinstance(checks, list)
        return {check["id"]: check for check in checks}


def run_doctor(*args: str, env: dict[str, str], cwd: Path, timeout: float = 30) -> DoctorRun:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "python419", "doctor", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return DoctorRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def down_env(**extra: str) -> dict[str, str]:
    """Settings pointing at nothing: Redis, Telegram and the API port all on unused ports."""
    return {
        **clean_environ(),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}",
        "P419_API_PORT": str(free_port()),
        **extra,
    }


def leaked(secret: str, text: str, window: int = 8) -> list[str]:
    """Pieces of `secret` found in `text`; a table may fold a long value over lines, so look for any 8 chars."""
    return sorted({secret[i : i + window] for i in range(len(secret) - window + 1)} & _windows(text, window))


def _windows(text: str, window: int) -> set[str]:
    return {text[i : i + window] for i in range(len(text) - window + 1)}


def write_files(root: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return root


# The write-up's layout: a `tasks` package whose app module autodiscovers, and a tasks module importing the app.
CONFIG = """
    import os
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
"""
CELERY_APP_AUTODISCOVER = """
    from celery import Celery

    import config

    celery_app = Celery("tasks", broker=config.REDIS_URL)
    celery_app.autodiscover_tasks(["tasks"])
"""
NOTIFICATIONS = """
    from tasks.celery_app import celery_app


    @celery_app.task(bind=True, max_retries=3)
    def send_tg_notification(self, product_name, product_id):
        return {"status": "success", "message": product_name}
"""
WRITE_UP_VARIANTS = {
    # autodiscover_tasks(["tasks"]) looks for tasks.tasks: the task is never registered, silently.
    "autodiscovery": CELERY_APP_AUTODISCOVER,
    # "Fixing" that with an import at the top: notifications imports the half-built app module.
    "cycle": "from tasks.notifications import send_tg_notification  # noqa\n"
    + textwrap.dedent(CELERY_APP_AUTODISCOVER),
    # The working shape: the import after the app exists.
    "fixed": textwrap.dedent(CELERY_APP_AUTODISCOVER) + "\nimport tasks.notifications  # noqa\n",
}


def write_up_package(root: Path, variant: str) -> Path:
    return write_files(
        root,
        {
            "config.py": CONFIG,
            "tasks/__init__.py": "",
            "tasks/celery_app.py": WRITE_UP_VARIANTS[variant],
            "tasks/notifications.py": NOTIFICATIONS,
        },
    )


# An app from "last week": it knows a task under another name and configures prefork.
STALE_APP = """
    import os
    from celery import Celery

    app = Celery("stale", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:1/0"))
    app.conf.worker_pool = "prefork"


    @app.task(name="tasks.notifications.send_notification_v0")
    def send_notification_v0(product_name):
        return product_name
"""


def start_celery_worker(
    module_dir: Path, module: str, redis_url: str, name: str, logdir: Path, pool: str = "prefork"
) -> Proc:
    """`celery -A module worker` by hand, as the write-up did, answering ping before this returns. The broker
    is given as the write-up's REDIS_URL and as Celery's own CELERY_BROKER_URL (which a project reads)."""
    argv = [sys.executable, "-m", "celery", "-A", module, "worker", f"--pool={pool}", "--concurrency=1"]
    argv += ["--without-mingle", "--without-gossip", "--loglevel=info", "-n", f"{name}@%h"]
    env = {
        **clean_environ(),
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "PYTHONPATH": str(module_dir),
    }
    proc = spawn(name, argv, env, logdir, cwd=module_dir)
    probe = Celery(broker=redis_url, set_as_current=False)
    try:
        answered = wait_until(
            lambda: any(name + "@" in n for r in probe.control.ping(timeout=0.5) or [] for n in r), 40
        )
    finally:
        probe.close()
    if not answered:
        proc.stop()
        raise AssertionError(f"worker {name} did not answer ping:\n{proc.output()[-3000:]}")
    return proc


def start_password_redis(password: str, logdir: Path) -> tuple[Proc, int]:
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    proc = spawn(f"redis-auth-{port}", [*argv, "--save", "", "--appendonly", "no"], dict(os.environ), logdir)
    client = redis.Redis(port=port, password=password, socket_connect_timeout=0.2)
    if not wait_until(client.ping, 10):
        proc.stop()
        raise AssertionError(f"redis-server did not start: {proc.output()}")
    return proc, port

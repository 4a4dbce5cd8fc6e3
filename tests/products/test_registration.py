"""The write-up's "Received unregistered task": registration must not depend on import order or autodiscovery."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import clean_environ

TASK = "tasks.notifications.send_tg_notification"


@pytest.mark.parametrize(
    "first",
    [
        "python419.products.tasks.celery_app",
        "python419.products.tasks.notifications",
        "python419.products.tasks",
        "python419.products.api",
    ],
)
def test_any_import_order_registers_the_task(first: str, tmp_path) -> None:
    code = (
        f"import importlib; importlib.import_module({first!r}); "
        "from python419.products.tasks.celery_app import celery_app; "
        f"print({TASK!r} in celery_app.tasks)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_environ(), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_task_declaration_matches_the_write_up() -> None:
    from python419.products.tasks.notifications import send_tg_notification

    assert send_tg_notification.name == TASK
    assert send_tg_notification.max_retries == 3
    from python419.products.tasks.celery_app import celery_app

    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.broker_connection_retry_on_startup and conf.worker_prefetch_multiplier == 1


def test_running_worker_reports_our_task_registered(stack) -> None:
    from celery import Celery

    probe = Celery(broker=stack.env["REDIS_URL"])
    registered = probe.control.inspect(timeout=2).registered() or {}
    [tasks] = [t for name, t in registered.items() if name.startswith("shared@")]
    assert TASK in tasks
    stats = probe.control.inspect(timeout=2).stats() or {}
    [worker_stats] = [s for name, s in stats.items() if name.startswith("shared@")]
    assert worker_stats["pool"]["implementation"].endswith("solo:TaskPool")

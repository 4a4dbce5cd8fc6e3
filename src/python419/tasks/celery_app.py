"""The Celery app, configured with what the write-up arrived at, for Redis or the embedded broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from python419.platforms import choose_pool
from python419.settings import Settings, get_settings
from python419.tasks.embedded import RESULT_MAX_AGE
from python419.tasks.queues import celery_queues, queue_name

TASK_NAME = "tasks.notifications.send_tg_notification"  # wire name of the original project: keep it


def file_url(path: Path) -> str:
    """A file:// URL as Celery's file result backend parses it (no percent-encoding)."""
    posix = path.resolve().as_posix()
    return "file://" + posix if posix.startswith("/") else "file:///" + posix


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        # Acknowledge after the task ran, so a crash mid-task does not lose the message.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # The config default matches what `p419 worker` passes on the command line (the write-up sets both).
        "worker_pool": choose_pool(settings.platform).pool,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": RESULT_MAX_AGE,
        "worker_hijack_root_logger": True,
        "broker_connection_timeout": 2.0,
        # Each stack its own queue, named after its database (two data dirs on one Redis stole each
        # other's messages, issue 12); the legacy `celery` queue is consumed too. See tasks/queues.py.
        "task_default_queue": queue_name(settings),
        "task_queues": celery_queues(settings),
    }
    if settings.broker == "embedded":
        # kombu warns "No hostname was supplied. Reverting to default 'localhost'" each time it describes
        # or clones a connection whose URL has no host (the banner, "Connected to", every publish): name one.
        config["broker_url"] = "filesystem://localhost/"
        root = settings.embedded_dir
        for sub in ("queue", "control", "results", "processed"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(root / "queue"),
            "data_folder_out": str(root / "queue"),
            "control_folder": str(root / "control"),
            # kombu moves each consumed message here; by default it goes to the temp folder, which may sit
            # on another drive (then the move is a copy: not atomic, two workers could both take one).
            "store_processed": True,
            "processed_folder": str(root / "processed"),
            # The default 1 s poll made every task wait a second; 50 ms measured at ~0.5 % idle CPU.
            "polling_interval": 0.05,
        }
        config["result_backend"] = file_url(root / "results")
    else:
        config["result_backend"] = settings.broker_url
        vt = settings.visibility_timeout
        config["broker_transport_options"] = {
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            "visibility_timeout": vt,
            # kombu checks for expired messages every interval x throttle (100 s by default); keep that
            # well under a short visibility timeout, or it is the restore loop that decides.
            "unacked_restore_interval": max(1, min(10, int(vt // 4))),
            "unacked_restore_throttle": 1 if vt < 400 else 10,
        }
        config["redis_socket_connect_timeout"] = 2
        config["redis_socket_timeout"] = 5
    return config


def create_app(settings: Settings) -> Celery:
    app = Celery("python419")
    app.conf.update(celery_config(settings))
    return app


celery_app = create_app(get_settings())
app = celery_app  # `celery -A python419.tasks.celery_app` finds either name

"""The bundled app's Celery app, configured with what the write-up arrived at, for Redis or the embedded broker.

Nothing happens at import: the app is made on first use (`get_app()`, or the module attributes `app` /
`celery_app` that `celery -A python419.products.tasks.celery_app` looks up), from the settings and the broker that
`python419.broker.runtime_target` picks for this process.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from celery import Celery

from python419.broker import BrokerTarget, make_embedded_folders, runtime_target
from python419.products import TASK_NAME
from python419.products.settings import ProductSettings, get_settings
from python419.products.tasks.embedded import RESULT_MAX_AGE
from python419.products.tasks.queues import celery_queues, queue_name
from python419.workers import choose_pool


def celery_config(settings: ProductSettings, target: BrokerTarget) -> dict[str, Any]:
    """The write-up's settings. p419 chooses the pool once, in the plan, and puts it on the worker's command
    line (which wins over any config); `worker_pool` here is only the default for a worker typed by hand
    (`celery -A python419.products.tasks.celery_app worker` on Windows must not fork), as the write-up advises."""
    config: dict[str, Any] = {
        "broker_url": target.url,
        "result_backend": target.result_backend,
        # Acknowledge after the task ran, so a crash mid-task does not lose the message.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
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
    if target.kind == "embedded":
        config["broker_transport_options"] = dict(target.transport_options)
        return config
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


def create_app(settings: ProductSettings, target: BrokerTarget) -> Celery:
    """The app with its task registered in a straight line: app, then the tasks module (no autodiscovery)."""
    from python419.products.tasks import notifications  # noqa: F401  (defines the task: registered on finalize)

    if target.kind == "embedded":
        make_embedded_folders(target)
    app = Celery("python419", set_as_current=True)
    # The default for every thread too: the task is a shared task, and the API publishes from its thread pool
    # (measured: without this, a publish from a request thread went to a default app on another broker).
    app.set_default()
    app.conf.update(celery_config(settings, target))
    app.finalize(auto=True)
    assert TASK_NAME in app.tasks, "the notification task must be registered before any worker starts"
    return app


@functools.lru_cache(maxsize=1)
def get_target() -> BrokerTarget:
    """The broker this process uses (see `runtime_target`), decided once."""
    from python419.runfiles import running_broker

    settings = get_settings()
    return runtime_target(settings, os.environ, running_broker(settings.run_dir))


@functools.lru_cache(maxsize=1)
def get_app() -> Celery:
    """This process's app, made once, on the broker this process should use."""
    return create_app(get_settings(), get_target())


def __getattr__(name: str) -> Any:
    # `celery -A python419.products.tasks.celery_app` finds the app under either name, made only when asked for.
    if name in ("app", "celery_app"):
        return get_app()
    raise AttributeError(name)

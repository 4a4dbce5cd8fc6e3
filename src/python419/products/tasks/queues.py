"""Which broker queue a stack uses, and how many messages wait in it.

Two stacks (two data dirs) on one Redis used to share Celery's default queue `celery`: 24 of 40 products
posted to stack A were taken by B's worker, which could not find them in its database and acked them away
(issue 12). Each stack now publishes to, and consumes from, a queue named after its identity (a random id in
its data dir; a hash of the data dir's path was shared by two containers with the same path, issue 20), so a
worker only ever sees messages of the outbox it serves. `celery` is still consumed too: the original
project's producer sends there (those messages carry no outbox id and are sent by whichever worker takes them).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from python419.broker import BrokerTarget
from python419.products.settings import ProductSettings
from python419.runfiles import stack_id

LEGACY_QUEUE = "celery"  # Celery's default, where the original project's producer sends
# kombu's Redis transport keeps one list per priority step: "q", then "q\x06\x163" and so on.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_name(settings: ProductSettings) -> str:
    """`p419-<12 hex>`: the stack's identity, a random id kept in its data dir (runfiles.stack_id), which the
    API and its workers share; another data dir gets another queue, even at the same path on another host or
    in another container. (A dash, not a dot: the embedded broker's file names are `<id>.<queue>.msg`.)"""
    return "p419-" + stack_id(settings.data_dir)


def celery_queues(settings: ProductSettings) -> tuple[Any, ...]:
    """The queues a worker consumes: its stack's own first, then the legacy default."""
    from kombu import Queue

    return (Queue(queue_name(settings)), Queue(LEGACY_QUEUE))


_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the sweeper thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def waiting_messages(settings: ProductSettings, target: BrokerTarget) -> int | None:
    """Messages waiting (not handed to any worker) in this stack's queue; None when the broker cannot say."""
    name = queue_name(settings)
    try:
        if target.kind == "embedded":
            folder = settings.embedded_dir / "queue"
            return sum(1 for _ in folder.glob(f"*.{name}.msg"))
        import redis

        url = target.url
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return sum(int(client.llen(name + suffix)) for suffix in PRIORITY_SUFFIXES)
    except Exception:
        return None

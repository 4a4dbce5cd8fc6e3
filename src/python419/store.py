"""SQLite storage: products and their notification outbox.

The outbox row, not the broker, is the source of truth for a notification. A sender claims a row atomically
with a lease; a row already delivered is never sent again; rows whose lease ran out, or that never reached the
broker, are found by `due_for_enqueue()` and re-enqueued by the workers' sweep.
"""

from __future__ import annotations

import functools
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["pending", "queued", "sending", "sent", "dry-run", "failed"]
FINAL_STATUSES = ("sent", "dry-run", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    price REAL NOT NULL,
    description TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL REFERENCES products(id),
    product_name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    task_id TEXT,
    lease_until REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_open ON notifications(status, lease_until);
"""


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    price: float
    description: str | None
    created_at: float


@dataclass(frozen=True)
class Notification:
    id: int
    product_id: int
    product_name: str
    status: Status
    attempts: int
    last_error: str | None
    task_id: str | None
    lease_until: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class Claim:
    """Outcome of trying to take a row for sending."""

    granted: bool
    notification: Notification | None


class Store:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._now = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: safe across threads and processes, and cheap for SQLite.
        db = sqlite3.connect(self.path, timeout=15, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout=15000")
            yield db
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1").fetchone()

    # --- products ---------------------------------------------------------------------------

    def create_product(
        self, name: str, price: float, description: str | None, *, publish_lease: float | None = None
    ) -> tuple[Product, Notification]:
        """The product and its outbox row, in one transaction: never one without the other.

        The row gets its task id now, so the message can be published under it. `publish_lease` keeps the
        sweep off the row while the caller publishes; if the caller dies first, the sweep takes over.
        """
        now = self._now()
        lease = now + publish_lease if publish_lease else None
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO products(name, price, description, created_at) VALUES (?, ?, ?, ?)",
                (name, price, description, now),
            )
            product_id = int(cur.lastrowid or 0)
            cur = db.execute(
                "INSERT INTO notifications(product_id, product_name, status, task_id, lease_until,"
                " created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                (product_id, name, new_task_id(), lease, now, now),
            )
            notification_id = int(cur.lastrowid or 0)
        product = self.get_product(product_id)
        notification = self.get_notification(notification_id)
        assert product is not None and notification is not None
        return product, notification

    def get_product(self, product_id: int) -> Product | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
        return Product(**dict(row)) if row else None

    def list_products(self, *, limit: int = 100, offset: int = 0) -> list[Product]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM products ORDER BY id LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [Product(**dict(row)) for row in rows]

    def notification_for_product(self, product_id: int) -> Notification | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM notifications WHERE product_id = ? ORDER BY id DESC LIMIT 1", (product_id,)
            ).fetchone()
        return Notification(**dict(row)) if row else None

    # --- the outbox -------------------------------------------------------------------------

    def get_notification(self, notification_id: int) -> Notification | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM notifications WHERE id = ?", (notification_id,)).fetchone()
        return Notification(**dict(row)) if row else None

    def mark_queued(self, notification_id: int, task_id: str, lease_seconds: float) -> None:
        """The message of chain `task_id` reached the broker. If no worker takes it within the lease, the
        sweep sends another. A row that moved on (claimed, finished, replaced) is left alone."""
        now = self._now()
        with self._connect() as db:
            db.execute(
                "UPDATE notifications SET status = 'queued', lease_until = ?, updated_at = ?"
                " WHERE id = ? AND task_id = ? AND status IN ('pending', 'queued')",
                (now + lease_seconds, now, notification_id, task_id),
            )

    def claim(self, notification_id: int, task_id: str, lease_seconds: float) -> Claim:
        """Take a row for sending, unless it is final, another sender holds a live lease, or the message
        belongs to an older chain that the sweep has replaced (its task id is no longer the row's)."""
        now = self._now()
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE notifications SET status = 'sending', attempts = attempts + 1, lease_until = ?,"
                " updated_at = ? WHERE id = ? AND task_id = ? AND (status IN ('pending', 'queued')"
                " OR (status = 'sending' AND lease_until < ?))",
                (now + lease_seconds, now, notification_id, task_id, now),
            )
            granted = cur.rowcount == 1
            row = db.execute("SELECT * FROM notifications WHERE id = ?", (notification_id,)).fetchone()
        return Claim(granted, Notification(**dict(row)) if row else None)

    def finish(self, notification_id: int, task_id: str, status: Status, error: str | None = None) -> None:
        """Record a final outcome. A failure counts only from the chain that holds the row; a delivery is a
        fact whoever made it (a sender presumed dead may still have got through)."""
        assert status in FINAL_STATUSES
        now = self._now()
        with self._connect() as db:
            db.execute(
                "UPDATE notifications SET status = ?, last_error = ?, lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND (task_id = ? OR (? != 'failed' AND status NOT IN"
                " ('sent', 'dry-run', 'failed')))",
                (status, error, now, notification_id, task_id, status),
            )

    def release_for_retry(
        self, notification_id: int, task_id: str, error: str, retry_in: float, lease_seconds: float
    ) -> None:
        """Back to `queued`: a retry message (same task id) is on its way; the lease covers its countdown."""
        now = self._now()
        with self._connect() as db:
            db.execute(
                "UPDATE notifications SET status = 'queued', last_error = ?, lease_until = ?, updated_at = ?"
                " WHERE id = ? AND task_id = ? AND status = 'sending'",
                (error, now + retry_in + lease_seconds, now, notification_id, task_id),
            )

    def forget_lease(self, notification_id: int) -> None:
        """Publishing failed: let the next sweep try this pending row again at once."""
        with self._connect() as db:
            db.execute(
                "UPDATE notifications SET lease_until = NULL WHERE id = ? AND status = 'pending'",
                (notification_id,),
            )

    def due_for_enqueue(self, lease_seconds: float, *, limit: int = 100) -> list[Notification]:
        """Rows that need a (new) message: never enqueued, or whose lease ran out.

        Each returned row gets a new task id and a lease in the same transaction, so two workers sweeping
        at once do not both enqueue it, and any message of the chain it replaces is refused by `claim`.
        A `sending` row whose lease ran out lost its sender (a killed worker): it goes back to `queued`.
        """
        now = self._now()
        with self._transaction() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM notifications WHERE status IN ('pending', 'queued', 'sending')"
                    " AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?",
                    (now, limit),
                )
            ]
            for notification_id in ids:
                db.execute(
                    "UPDATE notifications SET task_id = ?, lease_until = ?, updated_at = ?,"
                    " status = CASE status WHEN 'sending' THEN 'queued' ELSE status END WHERE id = ?",
                    (new_task_id(), now + lease_seconds, now, notification_id),
                )
            rows = [db.execute("SELECT * FROM notifications WHERE id = ?", (i,)).fetchone() for i in ids]
        return [Notification(**dict(row)) for row in rows]

    def oldest_open(self) -> Notification | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM notifications WHERE status IN ('pending', 'queued', 'sending')"
                " ORDER BY created_at LIMIT 1"
            ).fetchone()
        return Notification(**dict(row)) if row else None


def new_task_id() -> str:
    return str(uuid.uuid4())


@functools.lru_cache(maxsize=8)
def open_store(path: Path) -> Store:
    """One Store per database file and process (the schema is created once)."""
    return Store(path)

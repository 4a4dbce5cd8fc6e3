"""SQLite storage: products and their notification outbox.

The outbox row, not the broker, is the source of truth for a notification. A sender claims a row atomically
with a lease; a row already delivered is never sent again; rows whose lease ran out, or that never reached the
broker, are found by `due_for_enqueue()` and re-enqueued by the workers' sweep.

Connections: one per thread and process, kept open (an API request thread or a worker makes many calls; a
connection per call paid for opening, and for a WAL checkpoint each time the last one closed). Under WAL,
`synchronous=NORMAL` skips the fsync at each commit (0.27 ms -> 0.017 ms measured). A commit is still
atomic, and durable against any crash of the application (the API or a worker killed: the WAL is written
before COMMIT returns, only not forced to the platters). Only a power loss or an OS crash may roll back the
last commits: a `sent` mark lost that way means the row is sent again (the documented window, see README),
a `queued` row is re-published by the sweep; a product lost that way had been answered 201 — the trade
SQLite documents for WAL + NORMAL, accepted here for ~15x cheaper commits.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
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
CREATE INDEX IF NOT EXISTS notifications_product ON notifications(product_id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    product_id INTEGER NOT NULL REFERENCES products(id),
    created_at REAL NOT NULL
);
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


# A claim takes the row unless it is final, another sender holds a live lease, or the message is of an
# older chain (its task id is no longer the row's). RETURNING needs SQLite 3.35.
_CLAIM = (
    "UPDATE notifications SET status = 'sending', attempts = attempts + 1, lease_until = ?,"
    " updated_at = ? WHERE id = ? AND task_id = ? AND (status IN ('pending', 'queued')"
    " OR (status = 'sending' AND lease_until < ?))"
)
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
BUSY_TIMEOUT = 15.0  # seconds a write waits for another process's write lock
BUSY_TIMEOUT_MS = int(BUSY_TIMEOUT * 1000)
SQLITE_BUSY = 5  # sqlite3.SQLITE_BUSY from Python 3.11 on


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return (code & 0xFF) == SQLITE_BUSY
    return "database is locked" in str(exc)


class IdempotencyConflict(Exception):
    """An Idempotency-Key already used for a request with another body."""


class WriteBusy(Exception):
    """A write asked not to wait found another writer holding the lock: nothing was written."""


_inherited: list[sqlite3.Connection] = []  # connections a forked child must neither use nor close


class Store:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._now = clock
        self._local = threading.local()
        # Writers of this process queue on a Python lock rather than on SQLite's busy handler, which
        # polls with sleeps of up to 100 ms: under 50 concurrent POSTs that set the p99 (measured in
        # the report on issue 11). Other processes (workers) still meet the busy timeout.
        # (One lock per process: a child forked while the sweeper held it would otherwise wait forever.)
        self._write_lock, self._lock_pid = threading.Lock(), os.getpid()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the database file
        db.executescript(SCHEMA)

    def _db(self, busy_ms: int | None = None) -> sqlite3.Connection:
        """This thread's connection, opened on first use (and again in a forked child), with its busy timeout
        at `busy_ms` (BUSY_TIMEOUT by default): the one place it is set. It is set only when it changes: a
        worker's writes all use 1 ms, and setting it there and back around each one was 4 statements per
        message (~2 % of a worker's time)."""
        busy_ms = BUSY_TIMEOUT_MS if busy_ms is None else busy_ms
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        if db is None or local.pid != os.getpid():
            if db is not None:  # SQLite connections must not cross fork(); closing it here is unsafe too
                _inherited.append(db)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")  # safe under WAL: see the module docstring
            local.db, local.pid, local.busy_ms = db, os.getpid(), None
        if local.busy_ms != busy_ms:
            local.busy_ms = None  # unknown until the statement has run (an interrupt may come between)
            db.execute(f"PRAGMA busy_timeout={busy_ms}")
            local.busy_ms = busy_ms
        return db

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        yield self._db()

    def _write_soon(self, sql: str, params: tuple[object, ...]) -> list[sqlite3.Row]:
        """One write statement (its own transaction) for a worker, tried again every millisecond while
        another process holds the write lock, up to BUSY_TIMEOUT. SQLite's own busy handler sleeps 1, 2, 5,
        10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries whatever the holder does: while the API wrote
        a burst of products (transactions well under a millisecond each, back to back), a worker's claim
        waited up to 80 ms and its `finish` 10 ms (issue 11, the bench's scale row: measured in the
        worker, 0.2 s of waits per 160 products). (SQLite's busy handler cannot be replaced from Python.)"""
        # busy timeout 1: the handler's first step, one 1 ms sleep, then SQLITE_BUSY
        db = self._db(busy_ms=1)
        deadline = time.monotonic() + BUSY_TIMEOUT
        with self._writer_lock():
            while True:
                try:
                    return db.execute(sql, params).fetchall()  # stepped to its end: committed
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise

    def _writer_lock(self) -> threading.Lock:
        if self._lock_pid != os.getpid():
            self._write_lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._write_lock

    @contextmanager
    def _transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. `wait=False` raises WriteBusy at once instead of queueing behind another
        writer, of this process or another (the API writes on its event loop when it need not wait)."""
        db = self._db()
        lock = self._writer_lock()
        if not lock.acquire(blocking=wait):
            raise WriteBusy
        try:
            if wait:
                db.execute("BEGIN IMMEDIATE")
            else:
                self._begin_now()
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            lock.release()

    def _begin_now(self) -> None:
        """BEGIN IMMEDIATE without SQLite's busy handler (which sleeps up to 100 ms at a time): WriteBusy.
        The transaction's statements then have the connection's own busy timeout again."""
        try:
            self._db(busy_ms=0).execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise WriteBusy from exc
            raise
        finally:
            self._db()

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.db = None

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1").fetchone()

    # --- products ---------------------------------------------------------------------------

    def create_product(
        self,
        name: str,
        price: float,
        description: str | None,
        *,
        queued_lease: float | None = None,
        wait: bool = True,
    ) -> tuple[Product, Notification]:
        """The product and its outbox row, in one transaction: never one without the other.

        The row gets its task id now, so the message can be published under it. With `queued_lease` the
        row is born `queued` (the caller publishes right after the commit, with no second write: see
        `Store.forget_lease` for a failed publish); if the caller dies before publishing, the sweep sends
        it once the lease runs out. Without, it is `pending`, for the next sweep. `wait=False`: WriteBusy
        rather than waiting for another writer.
        """
        with self._transaction(wait=wait) as db:
            return self._insert(db, name, price, description, queued_lease)

    def create_product_once(
        self,
        key: str,
        request_hash: str,
        name: str,
        price: float,
        description: str | None,
        *,
        queued_lease: float | None = None,
        wait: bool = True,
    ) -> tuple[Product, Notification, bool]:
        """`create_product` under an Idempotency-Key: the same key gives back the product it created the
        first time (third value True: a replay, nothing created). The key and the product are written in
        one transaction, so a client retrying after an API crash finds either both or neither. A key used
        with another body raises IdempotencyConflict."""
        with self._transaction(wait=wait) as db:
            row = db.execute(
                "SELECT request_hash, product_id FROM idempotency_keys WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                if row["request_hash"] != request_hash:
                    raise IdempotencyConflict(key)
                product = db.execute("SELECT * FROM products WHERE id = ?", (row["product_id"],)).fetchone()
                note = db.execute(
                    "SELECT * FROM notifications WHERE product_id = ? ORDER BY id DESC LIMIT 1",
                    (row["product_id"],),
                ).fetchone()
                return Product(**dict(product)), Notification(**dict(note)), True
            product, notification = self._insert(db, name, price, description, queued_lease)
            db.execute(
                "INSERT INTO idempotency_keys(key, request_hash, product_id, created_at) VALUES (?, ?, ?, ?)",
                (key, request_hash, product.id, product.created_at),
            )
            return product, notification, False

    def _insert(
        self, db: sqlite3.Connection, name: str, price: float, description: str | None, lease: float | None
    ) -> tuple[Product, Notification]:
        now = self._now()
        cur = db.execute(
            "INSERT INTO products(name, price, description, created_at) VALUES (?, ?, ?, ?)",
            (name, price, description, now),
        )
        product = Product(int(cur.lastrowid or 0), name, price, description, now)
        status: Status = "queued" if lease else "pending"
        lease_until = now + lease if lease else None
        task_id = new_task_id()
        cur = db.execute(
            "INSERT INTO notifications(product_id, product_name, status, task_id, lease_until,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (product.id, name, status, task_id, lease_until, now, now),
        )
        notification = Notification(
            int(cur.lastrowid or 0), product.id, name, status, 0, None, task_id, lease_until, now, now
        )
        return product, notification

    def get_product(self, product_id: int) -> Product | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
        return Product(**dict(row)) if row else None

    def list_products(self, *, limit: int = 100, offset: int = 0) -> list[tuple[Product, int | None]]:
        """Products with the id of their (latest) notification."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT p.*, (SELECT MAX(n.id) FROM notifications n WHERE n.product_id = p.id)"
                " AS notification_id FROM products p ORDER BY p.id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        result = []
        for row in rows:
            fields = dict(row)
            notification_id = fields.pop("notification_id")
            result.append((Product(**fields), notification_id))
        return result

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

    def claim(self, notification_id: int, task_id: str, lease_seconds: float) -> Claim:
        """Take a row for sending, unless it is final, another sender holds a live lease, or the message
        belongs to an older chain that the sweep has replaced (its task id is no longer the row's)."""
        now = self._now()
        params = (now + lease_seconds, now, notification_id, task_id, now)
        if RETURNING:
            # One statement, its own transaction (the test and the write are atomic), returning the row
            # as it now is: a worker's claim was BEGIN, UPDATE, SELECT, COMMIT, 5 % of its CPU per message
            # (issue 11, py-spy).
            rows = self._write_soon(_CLAIM + " RETURNING *", params)
            if rows:
                return Claim(True, Notification(**dict(rows[0])))
            row = (
                self._db().execute("SELECT * FROM notifications WHERE id = ?", (notification_id,)).fetchone()
            )
            return Claim(False, Notification(**dict(row)) if row else None)
        with self._transaction() as db:  # SQLite before 3.35 (RHEL 9's 3.34) has no RETURNING
            granted = db.execute(_CLAIM, params).rowcount == 1
            row = db.execute("SELECT * FROM notifications WHERE id = ?", (notification_id,)).fetchone()
        return Claim(granted, Notification(**dict(row)) if row else None)

    def finish(self, notification_id: int, task_id: str, status: Status, error: str | None = None) -> None:
        """Record a final outcome. A failure counts only from the chain that holds the row; a delivery is a
        fact whoever made it (a sender presumed dead may still have got through)."""
        assert status in FINAL_STATUSES
        now = self._now()
        self._write_soon(
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
        self._write_soon(
            "UPDATE notifications SET status = 'queued', last_error = ?, lease_until = ?, updated_at = ?"
            " WHERE id = ? AND task_id = ? AND status = 'sending'",
            (error, now + retry_in + lease_seconds, now, notification_id, task_id),
        )

    def forget_lease(self, notification_id: int, task_id: str) -> None:
        """Publishing failed: the row is `pending` again (not on the broker), for the next sweep."""
        with self._connect() as db:
            db.execute(
                "UPDATE notifications SET status = 'pending', lease_until = NULL"
                " WHERE id = ? AND task_id = ? AND status IN ('pending', 'queued')",
                (notification_id, task_id),
            )

    def due_for_enqueue(
        self, lease_seconds: float, *, queued_too: bool = True, limit: int = 100
    ) -> list[Notification]:
        """Rows that need a (new) message, each leased for `lease_seconds` and marked `queued` in the same
        transaction (so two workers sweeping at once do not both publish it):

        - `pending`: never reached the broker (it was down), or publishing failed;
        - `sending` whose lease ran out: its sender died (a worker killed mid-send). It gets a new task id,
          so any message of the old chain (a retry held by a live worker) is refused by `claim`;
        - `queued` whose lease ran out, only when `queued_too`: its message may be lost, and is published
          again under the SAME task id. Why: kombu records a Redis message as unacked only after BRPOP
          returned it, so a worker killed (or frozen, then killed) in between loses it from both the queue
          and `unacked` (issue 12: rows stuck `queued` for the whole visibility timeout, 3600 s). The caller
          passes `queued_too` only when the broker's queue is empty, i.e. the message is not simply waiting
          behind others (re-publishing then would double the backlog every lease). Keeping the task id
          makes every copy equivalent: the first one claims the row, the others are refused (the row is
          `sending` under a live lease, or final), and none is starved by a chain change.
        """
        now = self._now()
        statuses = "('pending', 'queued', 'sending')" if queued_too else "('pending', 'sending')"
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT id, status FROM notifications WHERE status IN {statuses}"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT ?",
                (now, limit),
            ).fetchall()
            for row in rows:
                if row["status"] == "sending":
                    db.execute(
                        "UPDATE notifications SET task_id = ?, status = 'queued', lease_until = ?,"
                        " updated_at = ? WHERE id = ?",
                        (new_task_id(), now + lease_seconds, now, row["id"]),
                    )
                else:
                    db.execute(
                        "UPDATE notifications SET status = 'queued', lease_until = ?, updated_at = ?"
                        " WHERE id = ?",
                        (now + lease_seconds, now, row["id"]),
                    )
            found = [
                db.execute("SELECT * FROM notifications WHERE id = ?", (r["id"],)).fetchone() for r in rows
            ]
        return [Notification(**dict(row)) for row in found]

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

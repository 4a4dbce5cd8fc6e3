"""The outbox's claim/lease rules with a fake clock: what makes delivery exactly-once in practice."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from python419.products import store as store_module
from python419.products.store import Store


@pytest.fixture(autouse=True, params=["returning", "pre-3.35"])
def claim_statement(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every rule holds with both ways of claiming: UPDATE ... RETURNING (SQLite 3.35+) and the
    transaction older SQLite (RHEL 9's 3.34) gets."""
    if request.param == "returning" and sqlite3.sqlite_version_info < (3, 35, 0):
        pytest.skip(f"SQLite {sqlite3.sqlite_version} has no RETURNING")
    monkeypatch.setattr(store_module, "RETURNING", request.param == "returning")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path) -> tuple[Store, Clock]:
    clock = Clock()
    return Store(tmp_path / "db.sqlite", clock=clock), clock


def test_product_and_outbox_row_are_created_together(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    product, notification = store.create_product("Tea", 3.5, None)
    assert notification.product_id == product.id and notification.status == "pending"
    assert store.notification_for_product(product.id) == notification


def test_claim_is_exclusive_and_final_rows_are_never_claimed(tmp_path: Path) -> None:
    store, clock = make(tmp_path)
    _, n = store.create_product("Tea", 1, None)
    assert n.task_id
    first = store.claim(n.id, n.task_id, lease_seconds=30)
    assert first.granted and first.notification and first.notification.status == "sending"
    assert not store.claim(n.id, n.task_id, 30).granted  # a redelivery while the lease is live
    clock.now += 31
    assert store.claim(n.id, n.task_id, 30).granted  # the first sender is presumed dead
    store.finish(n.id, n.task_id, "sent")
    clock.now += 1000
    refused = store.claim(n.id, n.task_id, 30)
    assert not refused.granted and refused.notification and refused.notification.status == "sent"


def test_a_row_being_published_is_not_swept(tmp_path: Path) -> None:
    """The race CI caught: the sweep must not enqueue a second message while the API publishes the first."""
    store, clock = make(tmp_path)
    _, n = store.create_product("Tea", 1, None, queued_lease=30)
    assert n.status == "queued" and store.get_notification(n.id) == n
    assert store.due_for_enqueue(30) == []
    clock.now += 31  # the API died before publishing (or the message was lost): the sweep takes over
    assert store.due_for_enqueue(30, queued_too=False) == [], "not while messages wait in the queue"
    [again] = store.due_for_enqueue(30)
    assert again.id == n.id and again.task_id == n.task_id, "same chain: every copy is equivalent"


def test_a_lost_queued_message_is_republished_and_copies_claim_once(tmp_path: Path) -> None:
    """Issue 12 item 1: Redis handed the message to a worker killed before kombu recorded it as unacked."""
    store, clock = make(tmp_path)
    _, n = store.create_product("Tea", 1, None, queued_lease=40)
    clock.now += 41
    [copy] = store.due_for_enqueue(40)
    assert copy.status == "queued" and copy.lease_until == clock.now + 40
    assert store.claim(n.id, str(copy.task_id), 10).granted
    assert not store.claim(n.id, str(n.task_id), 10).granted, "the original message, if it turns up"
    store.finish(n.id, str(n.task_id), "sent")
    clock.now += 100
    assert store.due_for_enqueue(40) == [] and not store.claim(n.id, str(n.task_id), 10).granted


def test_one_connection_per_thread_and_normal_sync(tmp_path: Path) -> None:
    import threading

    store, _ = make(tmp_path)
    assert store._db() is store._db()
    assert store._db().execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(store._db()))
    thread.start()
    thread.join()
    assert other[0] is not store._db()


def test_idempotency_key_gives_back_the_first_product(tmp_path: Path) -> None:
    import pytest

    from python419.products.store import IdempotencyConflict

    store, _ = make(tmp_path)
    first, note, replayed = store.create_product_once("k1", "h1", "Tea", 1, None, queued_lease=30)
    assert not replayed
    again, same_note, replayed = store.create_product_once("k1", "h1", "Tea", 1, None, queued_lease=30)
    assert replayed and again == first and same_note.id == note.id
    with pytest.raises(IdempotencyConflict):
        store.create_product_once("k1", "h2", "Coffee", 2, None)
    other, _, replayed = store.create_product_once("k2", "h1", "Tea", 1, None)
    assert not replayed and other.id != first.id
    assert [p.id for p, _ in store.list_products()] == [first.id, other.id]


def test_list_products_carries_each_notification_id(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    made = [store.create_product(name, 1, None) for name in "abc"]
    assert store.list_products() == [(p, n.id) for p, n in made]
    assert store.list_products(limit=1, offset=2) == [(made[2][0], made[2][1].id)]


def test_sweep_replaces_the_chain_so_old_messages_are_refused(tmp_path: Path) -> None:
    store, clock = make(tmp_path)
    _, n = store.create_product("Tea", 1, None)
    assert n.task_id and store.claim(n.id, n.task_id, 3).granted
    clock.now += 4  # the sender was killed mid-send
    [swept] = store.due_for_enqueue(30)
    assert swept.task_id != n.task_id and swept.status == "queued"
    store.forget_lease(n.id, n.task_id)  # a late publish failure of the old chain changes nothing
    row = store.get_notification(n.id)
    assert row and row.lease_until == swept.lease_until and row.status == "queued"
    assert not store.claim(n.id, n.task_id, 3).granted  # the old chain (e.g. its retry) is stale
    assert swept.task_id and store.claim(n.id, swept.task_id, 3).granted
    store.finish(n.id, n.task_id, "failed", "late news from the old chain")
    row = store.get_notification(n.id)
    assert row and row.status == "sending" and row.last_error is None


def test_a_late_success_from_a_replaced_chain_still_counts(tmp_path: Path) -> None:
    """A sender presumed dead may still get through: its success must stop the new chain from sending."""
    store, clock = make(tmp_path)
    _, n = store.create_product("Tea", 1, None)
    old = str(n.task_id)
    assert store.claim(n.id, old, 3).granted
    clock.now += 4
    [swept] = store.due_for_enqueue(30)
    store.finish(n.id, old, "sent")  # the slow first send succeeded after all
    assert not store.claim(n.id, str(swept.task_id), 3).granted
    row = store.get_notification(n.id)
    assert row and row.status == "sent"


def test_sweep_finds_never_enqueued_and_expired_rows_once(tmp_path: Path) -> None:
    store, clock = make(tmp_path)
    _, pending = store.create_product("a", 1, None)
    _, queued = store.create_product("b", 1, None, queued_lease=120)
    _, sending = store.create_product("c", 1, None)
    _, done = store.create_product("d", 1, None)
    assert sending.task_id and done.task_id
    store.claim(sending.id, sending.task_id, 30)
    store.claim(done.id, done.task_id, 30)
    store.finish(done.id, done.task_id, "dry-run")
    assert [n.id for n in store.due_for_enqueue(30)] == [pending.id]
    assert store.due_for_enqueue(30) == []  # leased by the first sweep
    clock.now += 200
    due = {n.id: n for n in store.due_for_enqueue(30)}
    assert set(due) == {pending.id, queued.id, sending.id}
    assert due[sending.id].status == "queued"  # back in line, so the new message may claim it
    assert store.claim(sending.id, str(due[sending.id].task_id), 30).granted


def test_retry_release_keeps_the_row_out_of_the_sweep_during_countdown(tmp_path: Path) -> None:
    store, clock = make(tmp_path)
    _, n = store.create_product("a", 1, None)
    task = str(n.task_id)
    store.claim(n.id, task, 30)
    store.release_for_retry(n.id, task, "boom", retry_in=5, lease_seconds=30)
    row = store.get_notification(n.id)
    assert row and row.status == "queued" and row.last_error == "boom" and row.attempts == 1
    clock.now += 20
    assert store.due_for_enqueue(30) == []
    assert store.claim(n.id, task, 30).granted  # the retry message keeps its task id


def test_forget_lease_lets_the_next_sweep_retry_a_failed_publish(tmp_path: Path) -> None:
    store, _ = make(tmp_path)
    _, n = store.create_product("a", 1, None, queued_lease=30)
    assert store.due_for_enqueue(30) == []
    store.forget_lease(n.id, str(n.task_id))
    row = store.get_notification(n.id)
    assert row and row.status == "pending" and row.lease_until is None
    assert [x.id for x in store.due_for_enqueue(30, queued_too=False)] == [n.id]


def test_embedded_result_files_are_expired(tmp_path: Path) -> None:
    import os

    from python419.products.tasks.embedded import clean_results

    old, fresh = tmp_path / "celery-task-meta-old", tmp_path / "celery-task-meta-new"
    old.write_text("{}")
    fresh.write_text("{}")
    os.utime(old, (1000, 1000))
    assert clean_results(tmp_path, max_age=3600) == 1
    assert not old.exists() and fresh.exists()
    assert clean_results(tmp_path / "missing") == 0


def test_stale_control_messages_are_dropped(tmp_path: Path) -> None:
    import os

    from python419.products.tasks.embedded import clean_stale_control_messages

    stale = tmp_path / "1700000000_abc.worker2@vm.celery.pidbox.msg"
    task = tmp_path / "1700000000_def.celery.msg"
    for path in (stale, task):
        path.write_text("{}")
        os.utime(path, (1000, 1000))
    assert clean_stale_control_messages(tmp_path) == 1
    assert not stale.exists() and task.exists(), "a task message is never touched, however old"


def test_queue_name_is_the_data_dirs_identity(tmp_path: Path) -> None:
    """The stack's own queue: one id per data dir, made once and kept (so queued messages survive a restart),
    the same for every process of the stack even when they all start at once."""
    import subprocess
    import sys

    from python419.products.tasks.queues import queue_name
    from python419.settings import load_settings

    a = load_settings(P419_DATA_DIR=str(tmp_path / "a"), P419_PLATFORM="linux")
    same = load_settings(P419_DATA_DIR=str(tmp_path / "x" / ".." / "a"), P419_PLATFORM="linux")
    b = load_settings(P419_DATA_DIR=str(tmp_path / "b"), P419_PLATFORM="linux")
    assert queue_name(a) == queue_name(same) != queue_name(b)
    assert queue_name(a).startswith("p419-") and "." not in queue_name(a)
    assert queue_name(a) == "p419-" + (tmp_path / "a" / "stack-id").read_text()
    code = "import sys; from pathlib import Path; from python419.runfiles import stack_id; print(stack_id(Path(sys.argv[1])))"
    racers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c")], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    assert len({racer.communicate(timeout=30)[0].strip() for racer in racers}) == 1
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["stack-id"]  # no temporary file left behind


def _hold_write_lock(path: Path, seconds: float) -> threading.Thread:
    """Another process's writer, as far as SQLite can tell: its own connection holding the write lock."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def busy_timeout(store: Store) -> int:
    """The busy timeout this thread's connection has now (`_db()` would set its own first)."""
    return int(store._local.db.execute("PRAGMA busy_timeout").fetchone()[0])


def test_worker_writes_wait_for_another_writer_then_go_through(tmp_path: Path) -> None:
    """claim/finish try again every millisecond (not on SQLite's 1..100 ms sleeps) while another process
    holds the write lock, and then go through; the next statement of another kind has the connection's 15 s
    busy timeout again."""
    store, _ = make(tmp_path)
    _, n = store.create_product("p", 1.0, None, queued_lease=30)
    holder = _hold_write_lock(tmp_path / "db.sqlite", 0.3)
    claim = store.claim(n.id, str(n.task_id), 30)
    holder.join()
    assert claim.granted and claim.notification is not None and claim.notification.status == "sending"
    holder = _hold_write_lock(tmp_path / "db.sqlite", 0.3)
    store.finish(n.id, str(n.task_id), "sent")
    holder.join()
    assert busy_timeout(store) == 1, "a worker's writes keep their 1 ms between them"
    final = store.get_notification(n.id)
    assert final is not None and final.status == "sent"
    assert busy_timeout(store) == 15000


def test_an_interrupt_while_the_busy_timeout_changes_does_not_leave_it_unknown(tmp_path: Path) -> None:
    """A signal's exception right after the PRAGMA ran (a time limit, Ctrl+C): the next statement must not
    take the connection's busy timeout for the one it wanted."""
    store, _ = make(tmp_path)
    real = store._db()

    class Interrupted:
        def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
            cursor = real.execute(sql, *args)
            if sql.startswith("PRAGMA busy_timeout"):
                raise KeyboardInterrupt
            return cursor

    store._local.db = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        store._db(busy_ms=1)  # ran: the connection is at 1 ms
    store._local.db = real
    store.get_notification(1)
    assert busy_timeout(store) == 15000, "a read ran with the worker's 1 ms"


def test_worker_writes_give_up_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = make(tmp_path)
    _, n = store.create_product("p", 1.0, None, queued_lease=30)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT", 0.1)
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 100)
    holder = _hold_write_lock(tmp_path / "db.sqlite", 0.6)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.finish(n.id, str(n.task_id), "sent")
    finally:
        holder.join()
    row = store.get_notification(n.id)
    assert busy_timeout(store) == 100  # the connection's own timeout, for the read (0.1 s here)
    assert row is not None and row.status == "queued", "nothing written while the lock was held"

"""POST /products' fast path over real HTTP: the write on the event loop unless another writer holds the lock,
the outbox relay publishing what requests committed (batches, drained before the API exits)."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from python419.products.store import Store, WriteBusy
from tests.fake_telegram import FakeTelegram
from tests.procs import wait_until


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post_many(url: str, names: list[str], threads: int = 12) -> list[dict]:
    with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda n: client.post("/products", json={"name": n, "price": 1}), names))
    assert [a.status_code for a in answers] == [201] * len(names), [
        a.text for a in answers if a.status_code != 201
    ]
    return [a.json() for a in answers]


def test_a_burst_of_posts_is_delivered_once_each(make_stack, telegram: FakeTelegram) -> None:
    stack = make_stack()
    stack.start_worker("burst@%h")
    stack.start_api()
    marker = unique("burst")
    bodies = post_many(stack.api_url, [f"{marker} {i}" for i in range(60)])
    assert len({b["notification_id"] for b in bodies}) == 60
    assert all(b["notification"]["status"] == "queued" and b["notification"]["task_id"] for b in bodies)
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:

        def all_sent() -> bool:
            return all(
                client.get(f"/notifications/{b['notification_id']}").json()["status"] == "sent"
                for b in bodies
            )

        assert wait_until(all_sent, 60, 0.2), "not every notification of the burst was sent"
    assert len(telegram.attempts(marker)) == len(telegram.delivered(marker)) == 60, (
        "each product exactly once"
    )


def test_what_requests_handed_over_is_published_before_the_api_exits(
    make_stack, redis_server, telegram: FakeTelegram
) -> None:
    # No worker, and a lease far longer than the test: only the API's relay can have put these messages on
    # Redis (the sweep runs in workers, and would wait for the lease anyway).
    stack = make_stack(P419_LEASE_SECONDS="600")
    db = int(stack.env["REDIS_URL"].rsplit("/", 1)[1])
    broker = redis.Redis(port=int(redis_server.url.rsplit(":", 1)[1].split("/")[0]), db=db)
    api = stack.start_api()
    marker = unique("drain")
    answered: list[int] = []

    def post(i: int) -> None:
        try:
            with httpx.Client(base_url=stack.api_url, timeout=30) as client:
                answered.append(
                    client.post("/products", json={"name": f"{marker} {i}", "price": 1}).status_code
                )
        except httpx.HTTPError:
            pass  # sent after the shutdown began: refused, nothing kept

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(post, i) for i in range(300)]
        assert wait_until(lambda: len(answered) >= 40, 30)
        api.stop()  # SIGTERM in the middle of the burst: rows are being committed and handed over
        for future in futures:
            future.result()
    assert "Application shutdown complete" in api.output(), api.output()[-2000:]
    database = sqlite3.connect(Path(stack.env["P419_DATA_DIR"]) / "p419.db")
    statuses = [status for (status,) in database.execute("SELECT status FROM notifications")]
    assert set(statuses) == {"queued"} and len(statuses) >= answered.count(201) >= 40
    [queue] = [k for k in broker.keys("p419-*") if b"binding" not in k]
    assert broker.llen(queue) == len(statuses), "every committed row is on the broker"
    stack.start_worker("late@%h")
    assert telegram.wait_for(lambda: len(telegram.delivered(marker)) == len(statuses), 60), (
        "not all delivered"
    )


def test_a_post_waiting_for_another_writer_does_not_stall_the_api(make_stack, telegram: FakeTelegram) -> None:
    stack = make_stack()
    stack.start_worker("locked@%h")
    stack.start_api()
    marker = unique("locked")
    holder = sqlite3.connect(Path(stack.env["P419_DATA_DIR"]) / "p419.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer (a worker) holds SQLite's write lock
    answer: list[httpx.Response] = []
    with httpx.Client(base_url=stack.api_url, timeout=30) as client:
        poster = threading.Thread(
            target=lambda: answer.append(client.post("/products", json={"name": marker, "price": 1}))
        )
        poster.start()
        try:
            poster.join(1.0)
            assert poster.is_alive(), "the POST cannot have committed while the lock is held"
            # the event loop is free: another request is answered while the POST waits on the thread pool
            assert client.get("/health", params={"workers": "false"}).status_code == 200
            assert client.get("/products", params={"limit": 1}).status_code == 200
            assert poster.is_alive()
        finally:
            holder.execute("ROLLBACK")
        poster.join(20)
        assert answer and answer[0].status_code == 201, answer and answer[0].text
        body = answer[0].json()
        assert client.get(f"/products/{body['id']}").json()["notification_id"] == body["notification_id"]
    assert telegram.wait_for(lambda: telegram.delivered(marker), 30)


def test_a_write_told_not_to_wait_raises_write_busy_and_writes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(WriteBusy):
        store.create_product("Tea", 1, None, queued_lease=30, wait=False)
    with pytest.raises(WriteBusy):
        store.create_product_once("k", "h", "Tea", 1, None, wait=False)
    # the try without waiting is over: the connection has its own busy timeout again
    assert store._local.db.execute("PRAGMA busy_timeout").fetchone()[0] == 15000
    holder.execute("ROLLBACK")
    assert store.list_products() == []
    # this process's own writer holding the lock (a pool thread mid-transaction) counts the same
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._transaction():
            held.set()
            release.wait(10)

    holding = threading.Thread(target=hold)
    holding.start()
    assert held.wait(10)
    try:
        with pytest.raises(WriteBusy):
            store.create_product("Tea", 1, None, wait=False)
    finally:
        release.set()
        holding.join()
    product, notification = store.create_product("Tea", 1, None, queued_lease=30, wait=False)
    assert store.list_products() == [(product, notification.id)]
    # the busy timeout is back for waiting writes on the same connection
    assert store._db().execute("PRAGMA busy_timeout").fetchone()[0] == 15000


def test_a_chunked_body_declaring_a_small_length_is_still_limited(stack) -> None:
    """A declared Content-Length skips the body counting, unless a Transfer-Encoding overrides it."""
    import contextlib
    import socket

    port = int(stack.api_url.rsplit(":", 1)[1])
    chunk = b"x" * 1024
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(200)) + b"0\r\n\r\n"
    head = (
        b"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):  # the server answers and closes before reading it all
                sock.sendall(head + body)

        sender = threading.Thread(target=send)
        sender.start()
        answer = b""
        with contextlib.suppress(ConnectionResetError):  # the close after the answer, with data unread
            while received := sock.recv(65536):
                answer += received
        sender.join(10)
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 413), answer[:500]

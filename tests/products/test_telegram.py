"""The Bot API client against the fake Bot API: formatting, error classes, redaction."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from python419.products import telegram
from python419.products.telegram import (
    MESSAGE_LIMIT,
    TelegramClient,
    TelegramError,
    classify,
    product_message,
    redact,
    token_looks_valid,
)
from tests.conftest import TOKEN
from tests.fake_telegram import TLS_CERT, TLS_KEY, FakeTelegram
from tests.procs import free_port


def test_message_escapes_html() -> None:
    text = product_message("<script>alert('x')</script> & Tom's", 12)
    assert "&lt;script&gt;alert('x')&lt;/script&gt; &amp; Tom's" in text
    assert text.startswith("🆕 New product: <b>") and text.endswith("</b>\nID: 12")


@pytest.mark.parametrize("name", ["x" * 10_000, "&" * 5_000, "<>" * 3_000 + "tail"])
def test_message_fits_telegram_limit_without_splitting_entities(name: str) -> None:
    text = product_message(name, 1)
    assert len(text) <= MESSAGE_LIMIT
    body = text.split("<b>", 1)[1].rsplit("</b>", 1)[0]
    assert body.endswith("…")
    assert not body[:-1].endswith(("&", "&a", "&am", "&l", "&lt", "&g", "&gt"))


def test_classify() -> None:
    assert classify(200, {"ok": True, "result": {}}) is None
    rate = classify(429, {"ok": False, "description": "Too Many Requests", "parameters": {"retry_after": 7}})
    assert rate and rate.retryable and rate.retry_after == 7
    for code in (400, 401, 403):
        error = classify(code, {"ok": False, "description": "nope"})
        assert error and not error.retryable
    server = classify(502, None)
    assert server and server.retryable
    huge = {"retry_after": int("1" + "0" * 400)}  # float() overflows
    for params in ({"retry_after": "soon"}, "soon", None, huge, {"retry_after": "inf"}, {"retry_after": -3}):
        # not what the contract says: Telegram's usual 1 s
        odd = classify(429, {"ok": False, "description": "Too Many Requests", "parameters": params})
        assert odd and odd.retryable and odd.retry_after == 1.0


def test_client_success_and_permanent_errors() -> None:
    with FakeTelegram(TOKEN, "42") as fake:
        client = TelegramClient(TOKEN, fake.url, timeout=5)
        assert client.get_me()["is_bot"] is True
        assert client.send_message("42", "hi")["text"] == "hi"
        with pytest.raises(TelegramError, match="chat not found") as caught:
            client.send_message("999", "hi")
        assert caught.value.status_code == 400 and not caught.value.retryable
        with pytest.raises(TelegramError, match="Unauthorized") as caught:
            TelegramClient("1:wrong", fake.url).get_me()
        assert caught.value.status_code == 401


def test_client_rate_limit_and_network_errors_are_retryable() -> None:
    with FakeTelegram(TOKEN, "42") as fake:
        fake.script("m", ["429:3", "drop"])
        client = TelegramClient(TOKEN, fake.url, timeout=5)
        with pytest.raises(TelegramError) as caught:
            client.send_message("42", "m")
        assert caught.value.retryable and caught.value.retry_after == 3
        with pytest.raises(TelegramError) as caught:
            client.send_message("42", "m")
        assert caught.value.retryable and "network error" in str(caught.value)


def test_token_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TelegramError) as caught:
        TelegramClient(TOKEN, dead, timeout=1).send_message("42", "x")
    with FakeTelegram(TOKEN, "42") as fake:
        fake.script("x", ["500"])
        with pytest.raises(TelegramError) as second:
            TelegramClient(TOKEN, fake.url).send_message("42", "x")
    text = str(caught.value) + repr(caught.value) + str(second.value) + caplog.text
    assert TOKEN not in text


def test_redact() -> None:
    assert (
        redact(f"GET https://api.telegram.org/bot{TOKEN}/getMe")
        == "GET https://api.telegram.org/bot<redacted>/getMe"
    )
    assert TOKEN not in redact(f"token is {TOKEN}", TOKEN)
    tail, head = TOKEN[20:], TOKEN[:14]  # an answer that starts (or stops) in the middle of the token
    assert (
        redact(f"b'{tail}/getMe HTTP/1.1' and '{head}'", TOKEN)
        == "b'<redacted>/getMe HTTP/1.1' and '<redacted>'"
    )
    assert redact("Bad Request: chat not found", TOKEN) == "Bad Request: chat not found"


def test_token_format() -> None:
    assert token_looks_valid(TOKEN)
    assert not token_looks_valid("123:short") and not token_looks_valid("abc")


def test_a_trickling_answer_is_cut_at_the_whole_request_deadline() -> None:
    """Issue 12 item 4: one byte every 0.3 s never trips a 1 s per-read timeout; the deadline must."""
    with FakeTelegram(TOKEN, "42") as fake:
        fake.script("slow", ["trickle:0.3"])
        with TelegramClient(TOKEN, fake.url, timeout=1.0) as client:
            started = time.monotonic()
            with pytest.raises(TelegramError) as caught:
                client.send_message("42", "slow")
            elapsed = time.monotonic() - started
            assert caught.value.retryable and "Timeout" in str(caught.value)
            # the whole answer would take ~60 s; a per-read timeout alone would never fire
            assert 0.9 <= elapsed < 2.5, f"took {elapsed:.2f}s for a 1 s deadline"
            [call] = fake.attempts("slow")
            assert fake.wait_for(lambda: call.ended is not None, 5), "the server kept trickling"
            # the same kept client works for the next message (a fresh connection)
            assert client.send_message("42", "slow again")["text"] == "slow again"


def test_one_kept_client_reuses_its_connection() -> None:
    from python419.products.telegram import shared_client

    with FakeTelegram(TOKEN, "42") as fake:
        client = shared_client(TOKEN, fake.url, 5.0)
        assert shared_client(TOKEN, fake.url, 5.0) is client
        ports = set()
        for i in range(3):
            client.send_message("42", f"m{i}")
        with fake._lock:
            ports = {c.port for c in fake.calls}
        assert len(ports) == 1, "each message opened a new connection"
        client.close()


def test_a_kept_connection_the_server_closed_is_replaced_not_failed() -> None:
    """Servers end idle keep-alive connections; the next message must open a new one, not fail on the old."""
    with FakeTelegram(TOKEN, "42") as fake, TelegramClient(TOKEN, fake.url, timeout=5) as client:
        client.send_message("42", "before")
        fake.drop_connections()
        assert fake.wait_for(lambda: not fake._open, 5), "the fake kept its connection"
        assert client.send_message("42", "after")["text"] == "after"
        [before], [after] = fake.delivered("before"), fake.delivered("after")
        assert before.port != after.port, "the closed connection was reused"


def test_threads_sending_at_once_each_get_a_connection() -> None:
    """A threads (or gevent) pool shares the process's client: one request per connection at a time."""
    with FakeTelegram(TOKEN, "42") as fake, TelegramClient(TOKEN, fake.url, timeout=5) as client:
        fake.latency = 0.02  # long enough for the threads to overlap
        with ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(lambda i: client.send_message("42", f"t{i}")["text"], range(40)))
        assert sorted(texts) == sorted(f"t{i}" for i in range(40))
        assert len(fake.delivered("t")) == 40
        assert len(client._idle) <= telegram.MAX_IDLE
        client.close()
        assert fake.wait_for(lambda: not fake._open, 5), "close() left connections open"
        # closed while a call is in flight: that call ends, and its connection is closed, not kept
        fake.latency = 0.3
        other = TelegramClient(TOKEN, fake.url, timeout=5)
        with ThreadPoolExecutor(1) as pool:
            late = pool.submit(other.send_message, "42", "late")
            assert fake.wait_for(lambda: len(fake._open) == 1, 5)
            other.close()
            assert late.result()["text"] == "late"
        assert not other._idle and fake.wait_for(lambda: not fake._open, 5), (
            "a closed client kept its connection"
        )


def test_https_verifies_the_certificate_and_keeps_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Bot API is https: the same kept connection, deadline and errors over TLS."""
    with FakeTelegram(TOKEN, "42", tls=True) as fake:
        assert fake.url.startswith("https://")
        # Not trusted (certifi's bundle): a network error, never a send in clear.
        with pytest.raises(TelegramError, match="CERTIFICATE_VERIFY_FAILED") as caught:
            TelegramClient(TOKEN, fake.url, timeout=5).send_message("42", "untrusted")
        assert caught.value.retryable and TOKEN not in str(caught.value)
        assert not fake.attempts("untrusted")
        monkeypatch.setenv("SSL_CERT_FILE", str(TLS_CERT))
        with TelegramClient(TOKEN, fake.url, timeout=1.0) as client:
            for i in range(3):
                assert client.send_message("42", f"tls{i}")["text"] == f"tls{i}"
            assert len({c.port for c in fake.delivered("tls")}) == 1, "TLS connection not kept"
            fake.script("slow", ["trickle:0.3"])
            started = time.monotonic()
            with pytest.raises(TelegramError, match="Timeout"):
                client.send_message("42", "slow")
            assert 0.9 <= time.monotonic() - started < 2.5
            assert client.send_message("42", "tls after")["text"] == "tls after"


def test_an_answer_no_parser_can_read_is_a_network_error_and_the_client_goes_on() -> None:
    with FakeTelegram(TOKEN, "42") as fake, TelegramClient(TOKEN, fake.url, timeout=5) as client:
        fake.script("bad", ["broken"])
        with pytest.raises(TelegramError, match="network error") as caught:
            client.send_message("42", "bad")
        assert caught.value.retryable and TOKEN not in str(caught.value)
        assert client.send_message("42", "good")["text"] == "good"


def test_chunked_answers_after_an_interim_one_keep_the_connection() -> None:
    """What a proxy in front of the Bot API may send: an interim 100, then the answer in chunks. Two messages
    go over one connection, each answer read whole."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as requests:
            for n in (1, 2):
                head = b"".join(iter(lambda: requests.readline(), b"\r\n"))
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                seen.append(requests.read(length))
                body = b'{"ok":true,"result":{"message_id":%d}}' % n
                conn.sendall(
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    with listener, TelegramClient(TOKEN, url, timeout=5) as client:
        assert client.send_message("42", "one") == {"message_id": 1}
        assert client.send_message("42", "two") == {"message_id": 2}
        server.join(5)
    assert [b'"text": "one"' in seen[0], b'"text": "two"' in seen[1]] == [True, True]


@pytest.mark.parametrize("echo_from", [0, 6, 9, 20])
def test_an_echoed_request_never_shows_a_piece_of_the_token(echo_from: int) -> None:
    """Something that is not the Bot API sends the request back (from some byte on): the error names what
    came, with the token masked, whole or cut."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(65536)[echo_from:])

    threading.Thread(target=serve, daemon=True).start()
    with listener, pytest.raises(TelegramError, match="not an HTTP answer") as caught:
        TelegramClient(TOKEN, f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=2).get_me()
    text = str(caught.value)
    digits, secret = TOKEN.split(":")
    assert digits not in text and not any(secret[i : i + 8] in text for i in range(len(secret) - 7)), text


def test_tls_bytes_after_an_answer_are_not_taken_for_the_next_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server sends more than its answer, in the same TLS record, past the reader's buffer: OpenSSL holds
    the rest, the descriptor does not show it. The connection is not kept; the next message gets its own
    answer (it got the stale one, and each later message the one before it)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS_CERT))
    listener = socket.create_server(("127.0.0.1", 0))

    def answer(n: int) -> bytes:
        body = b'{"ok":true,"result":{"message_id":%d}}' % n
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve() -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(TLS_CERT, TLS_KEY)
        for extra in (b" " * 8192 + answer(999), b""):  # a new connection for the second message
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as conn, conn.makefile("rb") as requests:
                head = b"".join(iter(lambda: requests.readline(), b"\r\n"))
                requests.read(int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]))
                conn.sendall(answer(1 if extra else 2) + extra)  # one write: one TLS record
                if extra:
                    with contextlib.suppress(OSError):
                        conn.recv(1)  # held open until the client closes it

    threading.Thread(target=serve, daemon=True).start()
    with (
        listener,
        TelegramClient(TOKEN, f"https://127.0.0.1:{listener.getsockname()[1]}", timeout=3) as client,
    ):
        assert client.send_message("42", "one") == {"message_id": 1}
        assert client.send_message("42", "two") == {"message_id": 2}


def test_a_kept_connection_is_reused_on_a_descriptor_past_1024() -> None:
    """select() cannot take descriptors numbered 1024 or more; a busy worker (many files, sockets) has them."""
    with open(os.devnull) as null:
        padding = [os.dup(null.fileno()) for _ in range(1100)]
    try:
        with FakeTelegram(TOKEN, "42") as fake, TelegramClient(TOKEN, fake.url, timeout=5) as client:
            for i in range(5):
                client.send_message("42", f"high{i}")
            assert client._idle and client._idle[0].fileno() >= 1024
            assert len({c.port for c in fake.delivered("high")}) == 1, "a new connection per message"
    finally:
        for fd in padding:
            os.close(fd)


def under_gevent(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`script` in a new interpreter whose sockets gevent has patched, as Celery's gevent pool does, trusting
    the fake's test certificate."""
    patched = "from gevent import monkey\n\nmonkey.patch_all()\n" + script
    return subprocess.run(
        [sys.executable, "-c", patched, *args],
        env={**os.environ, "SSL_CERT_FILE": str(TLS_CERT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


GEVENT_SENDER = """
import sys

from python419.products.telegram import TelegramClient

client = TelegramClient(sys.argv[1], sys.argv[2], timeout=5)
for i in range(3):
    print(client.send_message("42", f"gevent{i}")["text"], flush=True)
"""


def test_under_gevent_over_tls_each_message_is_sent_once() -> None:
    """Celery's gevent pool patches the socket and ssl modules: gevent's TLS socket reads `nbytes=0` as
    "nothing", which made every answer look like a closed connection after the message went out (each
    retry a duplicate). A real gevent, a real TLS connection."""
    with FakeTelegram(TOKEN, "42", tls=True) as fake:
        run = under_gevent(GEVENT_SENDER, TOKEN, fake.url)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.split() == ["gevent0", "gevent1", "gevent2"]
        sent = fake.attempts("gevent")
        assert [c.payload["text"] for c in sent] == ["gevent0", "gevent1", "gevent2"]
        assert len({c.port for c in sent}) == 1, "the TLS connection was not kept"


@contextlib.contextmanager
def trickling_proxy(upstream: str, pause: float = 0.05) -> Iterator[tuple[str, threading.Event]]:
    """A TCP proxy in front of `upstream` that passes the client's bytes at once and, while the event it
    yields is set (at first), the server's one byte at a time, `pause` apart: a TLS record arrives in
    hundreds of pieces. Yields (its https URL, that event)."""
    host, port = upstream.rsplit("/", 1)[-1].rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    stop, slow = threading.Event(), threading.Event()
    slow.set()

    def pump(src: socket.socket, dst: socket.socket, trickle: bool) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set() and (data := src.recv(65536)):
                if not (trickle and slow.is_set()):
                    dst.sendall(data)
                    continue
                for i in range(len(data)):
                    dst.sendall(data[i : i + 1])
                    if stop.wait(pause):
                        return
        for end in (src, dst):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                client, _ = listener.accept()
                server = socket.create_connection((host, int(port)))
                threading.Thread(target=pump, args=(client, server, False), daemon=True).start()
                threading.Thread(target=pump, args=(server, client, True), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}", slow
    finally:
        stop.set()
        listener.close()


GEVENT_TRICKLED = """
import sys
import time

from python419.products.telegram import TelegramClient, TelegramError

client = TelegramClient(sys.argv[1], sys.argv[2], timeout=1.0)
started = time.monotonic()
try:
    client.send_message("42", "trickled")
    print("answered")
except TelegramError as exc:
    print(f"{time.monotonic() - started:.2f}", exc)
"""


def test_under_gevent_a_tls_answer_fed_a_byte_at_a_time_still_ends_at_the_deadline() -> None:
    """gevent's TLS socket gives every wait for a piece of a record the whole socket timeout: through this
    proxy (handshake and answer a byte every 50 ms) a 1 s call was still running after 60 s without a bound
    on the whole call."""
    with FakeTelegram(TOKEN, "42", tls=True) as fake, trickling_proxy(fake.url) as (url, _):
        run = under_gevent(GEVENT_TRICKLED, TOKEN, url)
    assert run.returncode == 0, run.stderr[-3000:]
    elapsed, _, error = run.stdout.strip().partition(" ")
    assert "Timeout" in error and TOKEN not in error, run.stdout
    assert 0.9 <= float(elapsed) < 2.5, f"a 1 s call took {elapsed} s"


def test_a_tls_handshake_and_answer_fed_a_byte_at_a_time_end_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same proxy without gevent: the standard library's TLS keeps one deadline per read and per
    handshake, and the client gives each what is left of the call."""
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS_CERT))
    with (
        FakeTelegram(TOKEN, "42", tls=True) as fake,
        trickling_proxy(fake.url) as (url, slow),
        TelegramClient(TOKEN, url, timeout=1.0) as client,
    ):
        for phase in ("handshake", "answer"):
            if phase == "answer":
                slow.clear()
                client.send_message("42", "fast")  # a kept connection, its handshake at full speed
                slow.set()
            started = time.monotonic()
            with pytest.raises(TelegramError, match="Timeout"):
                client.send_message("42", f"trickled {phase}")
            assert 0.9 <= time.monotonic() - started < 2.5, phase
        assert [c.payload["text"] for c in fake.delivered("trickled")] == ["trickled answer"]

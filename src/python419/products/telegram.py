"""A small Telegram Bot API client: sendMessage, getMe, getChat, errors and token redaction.

The bot token is part of every Bot API URL (`/bot<TOKEN>/method`), so any URL or error text could leak it.
Everything that leaves this module as text goes through `redact()`. The client speaks HTTP through the
standard library; httpx's request logging (full URLs at INFO), wherever httpx runs in the same process,
is silenced as well.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import logging
import math
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
from typing import Any, BinaryIO
from urllib.parse import urlsplit

MESSAGE_LIMIT = 4096  # Telegram's maximum text length for sendMessage
_BOT_PATH = re.compile(r"/bot[^/\s]+")

# httpx logs "HTTP Request: POST https://api.telegram.org/bot<TOKEN>/sendMessage" at INFO.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


_TOKEN_RUN = re.compile(r"[A-Za-z0-9_:-]{8,}")  # a run of the characters a token is made of
_PIECE = 8  # characters of the token that give it away


def redact(text: str, token: str | None = None) -> str:
    """Remove the token (and anything shaped like a Bot API path) from text; with the token known, also any
    run of its characters that holds a piece of it (8 characters or more): a server echoing the request
    from some byte on starts its answer in the middle of the token."""
    if token:
        text = text.replace(token, "<redacted>")
        pieces = {token[i : i + _PIECE] for i in range(len(token) - _PIECE + 1)}

        def mask(run: re.Match[str]) -> str:
            word = run.group()
            given = any(word[i : i + _PIECE] in pieces for i in range(len(word) - _PIECE + 1))
            return "<redacted>" if given else word

        text = _TOKEN_RUN.sub(mask, text)
    return _BOT_PATH.sub("/bot<redacted>", text)


def product_message(product_name: str, product_id: int) -> str:
    """HTML for parse_mode=HTML: the name escaped, the whole text within Telegram's limit."""
    head, tail = "🆕 New product: <b>", f"</b>\nID: {product_id}"
    budget = MESSAGE_LIMIT - len(head) - len(tail)
    name = html.escape(product_name, quote=False)
    if len(name) > budget:
        # Cut the raw name, then escape, so an entity like &amp; is never split in half.
        used = cut = 0
        for char in product_name:
            width = len(html.escape(char, quote=False))
            if used + width > budget - 1:
                break
            used, cut = used + width, cut + 1
        name = html.escape(product_name[:cut], quote=False) + "…"
    return head + name + tail


class TelegramError(Exception):
    """A failed Bot API call. `retryable` says whether sending again can help."""

    def __init__(
        self,
        description: str,
        status_code: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description, status_code, retryable, retry_after)
        self.description = description
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f"{self.status_code} " if self.status_code else ""
        return f"Telegram {code}{self.description}"


def classify(status_code: int, payload: dict[str, Any] | None) -> TelegramError | None:
    """Turn a Bot API response into None (success) or the error it stands for."""
    payload = payload or {}
    if status_code == 200 and payload.get("ok") is True:
        return None
    description = str(payload.get("description") or f"HTTP {status_code}")
    if status_code == 429:
        params = payload.get("parameters")
        try:
            retry_after = float(params.get("retry_after", 1)) if isinstance(params, dict) else 1.0
        except (TypeError, ValueError, OverflowError):  # not a number: wait Telegram's usual second
            retry_after = 1.0
        if not math.isfinite(retry_after) or retry_after < 0:
            retry_after = 1.0
        return TelegramError(description, status_code, retryable=True, retry_after=retry_after)
    if status_code >= 500 or status_code == 200:
        return TelegramError(description, status_code, retryable=True)
    # 400 (chat not found, bad HTML), 401 (token rejected), 403 (bot blocked): sending again cannot help.
    return TelegramError(description, status_code, retryable=False)


KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is kept; the next message after that opens a new one
MAX_IDLE = 4  # idle connections kept per client (one per thread that sends at the same time, up to this)


class RequestTimeout(TimeoutError):
    """The whole request (connect, send, answer) took longer than the client's timeout."""


def _ssl_context() -> ssl.SSLContext:
    """Certificate checks as httpx makes them: SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's bundle
    (the same trust on every OS, Windows included). Not `httpx.create_ssl_context()` itself: importing httpx
    for it cost 0.075-0.126 s (3 runs) in every worker's start-up, where nothing else uses httpx."""
    import certifi

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RequestTimeout("the whole request took longer than its deadline")
    return left


def _open_socket(host: str, port: int, deadline: float) -> socket.socket:
    """socket.create_connection, each address tried for what is left of the deadline only: it gives every
    address the whole timeout, and api.telegram.org has an IPv4 and an IPv6 one (a review's experiment: a
    black-holed first address, then a stalled one, took 2x the timeout). The name lookup is not bounded."""
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address)
            return sock
        except RequestTimeout:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address found for {host}")


def _whole_call_bound(seconds: float) -> contextlib.AbstractContextManager[object]:
    """Under gevent's patched sockets, a gevent.Timeout around the whole call. gevent's TLS socket waits up to
    the socket's timeout for each piece of a TLS record, so a read (or a handshake) fed a byte at a time
    outlived the deadline: through a proxy passing a byte every 50 ms, a 1 s call took 8.3 s (the answer
    trickled; a review's experiment) and over 60 s (the handshake too; test_telegram). The standard library's TLS keeps one deadline per read, and every
    read is cut to what is left of the call (`_Connection`), so elsewhere nothing more is needed."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        timeout: contextlib.AbstractContextManager[object] = sys.modules["gevent"].Timeout(
            seconds, RequestTimeout("the whole request took longer than its deadline")
        )
        return timeout
    return contextlib.nullcontext()


def _readable(sock: socket.socket) -> bool:
    """Whether the socket has something to read now. poll where there is one: select() cannot take a
    descriptor numbered 1024 or more (a kept connection was then never reused)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])  # Windows (and gevent, which removes poll)


MAX_LINE = 65536  # bytes in a status or header line, as http.client allows
MAX_HEADERS = 100
MAX_BODY = 4 * 1024 * 1024  # a Bot API answer is a few kilobytes; more is not the Bot API


class BadAnswer(ValueError):
    """An answer that is not HTTP/1.x as a Bot API (or a proxy before it) sends it."""


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()  # isdigit() alone takes "²"


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise BadAnswer(f"a header line longer than {MAX_LINE} bytes")
    return line


def _headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == "content-length" and headers.get(name, value) != value:
            raise BadAnswer("two different Content-Lengths")  # which body is the answer's is anyone's guess
        headers[name] = value
    raise BadAnswer(f"more than {MAX_HEADERS} headers")


def _exactly(reader: BinaryIO, size: int) -> bytes:
    if size > MAX_BODY:
        raise BadAnswer(f"an answer of {size} bytes")
    data = reader.read(size)
    if len(data) < size:
        raise ConnectionError(f"the answer ended after {len(data)} of {size} bytes")
    return data


def _chunked(reader: BinaryIO) -> bytes:
    parts, total = [], 0
    while True:
        field = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(field, 16)
        except ValueError:
            raise BadAnswer(f"a chunk size of {field!r}") from None
        if size < 0:
            raise BadAnswer(f"a chunk size of {field!r}")
        if size == 0:
            break
        total += size
        if total > MAX_BODY:
            raise BadAnswer(f"an answer of more than {MAX_BODY} bytes")
        parts.append(_exactly(reader, size))
        if _line(reader) not in (b"\r\n", b"\n"):
            raise BadAnswer("a chunk longer than its size")
    while _line(reader) not in (b"\r\n", b"\n", b""):  # trailers
        pass
    return b"".join(parts)


def read_answer(reader: BinaryIO) -> tuple[int, bytes, bool]:
    """One HTTP/1.x answer to a POST: (status, body, whether the server closes the connection).

    Written for the Bot API's answers instead of http.client's parser, whose headers go through the email
    package: 24-27 us per answer there, 5-8 us here (the fake Bot API's answer, read 20000 times from
    memory). Interim 1xx answers are skipped; the body comes by Content-Length, chunks, or up to the end of
    the connection. A malformed answer raises BadAnswer (a ValueError), one cut short ConnectionError: the
    caller's network error."""
    while True:
        line = _line(reader)
        if not line:
            raise ConnectionError("the server closed the connection without an answer")
        version, _, rest = line.decode("latin-1").partition(" ")
        code = rest.split(None, 1)[0] if rest.strip() else ""
        if not version.startswith("HTTP/1.") or not _digits(code) or not 100 <= int(code) <= 999:
            # The whole line: a cut could split the token of an echoed request, and redact() would miss it.
            raise BadAnswer(f"not an HTTP answer: {line!r}")
        status, headers = int(code), _headers(reader)
        if status >= 200:
            break
    connection = headers.get("connection", "").lower()
    closes = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    if status in (204, 304):
        return status, b"", closes
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, _chunked(reader), closes
    length = headers.get("content-length")
    if length is not None:  # "11, 11" is one length said twice (RFC 9110, 8.6)
        lengths = {value.strip() for value in length.split(",")}
        length = lengths.pop() if len(lengths) == 1 else length
    if length is None:  # up to the end of the connection
        body = reader.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise BadAnswer(f"an answer of more than {MAX_BODY} bytes")
        return status, body, True
    if not _digits(length):
        raise BadAnswer(f"a Content-Length of {length!r}")
    return status, _exactly(reader, int(length)), closes


class _Connection:
    """One kept HTTP/1.1 connection to the Bot API, on a plain or TLS socket.

    Every send and every read is cut to what is left of the request's deadline: a per-read timeout alone
    never fires on a Bot API that trickles its answer a byte every 0.7 s, which held a send for 49 s, past
    its 40 s lease, so the sweep started a second sender (issue 12; test_telegram's trickling server). The
    request goes out in one write; `read_answer` reads the answer through `recv_into`, the only socket call
    this object answers besides `fileno`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = 0.0
        self.idle_since = time.monotonic()

    def exchange(self, request: bytes, deadline: float) -> tuple[int, bytes, bool]:
        """Send the request, read the whole answer: (status, body, whether the server closes)."""
        self.deadline = deadline
        self._arm()
        self.sock.sendall(request)
        with io.BufferedReader(socket.SocketIO(self, "rb")) as reader:  # type: ignore[arg-type]
            return read_answer(reader)

    def reusable(self, now: float) -> bool:
        """Idle within the keep-alive expiry and not readable: a kept connection that has something to read
        was closed by the server (or sent what nobody asked for); either way it is not to be reused. On TLS,
        bytes OpenSSL has already taken off the socket count too (`pending()`): the descriptor does not show
        them, and the next request would take them for its answer."""
        if now - self.idle_since > KEEPALIVE_EXPIRY:
            return False
        pending = getattr(self.sock, "pending", None)
        try:
            return not (pending is not None and pending()) and not _readable(self.sock)
        except (OSError, ValueError):
            return False

    def _arm(self) -> None:
        self.sock.settimeout(_left(self.deadline))

    # The socket surface the answer is read through (socket.SocketIO).
    def recv_into(self, buffer: Any) -> int:
        # Only the buffer is passed on: gevent's TLS socket reads nbytes=0 as "nothing" where the standard
        # library reads "the buffer's size", and an answer's reader takes that 0 for a closed connection after
        # the message had been sent (a review's experiment: three sends under gevent, three deliveries).
        self._arm()
        return self.sock.recv_into(buffer)

    def _decref_socketios(self) -> None:
        """SocketIO.close() calls this; the socket stays open, kept for the next request."""

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class TelegramClient:
    """A Bot API client on kept connections: building a client (its SSL context) for every message cost
    20.8 ms, a POST on a kept one 0.72 ms (issue 11, ~70 % of a worker's time). Every call, however the
    server dribbles its answer, is over within `timeout` seconds (connect, write and read included).

    The transport is the standard library's: a socket, one write per request, `read_answer`. Measured
    against the same fake Bot API on loopback (issue 11, the bench's worker row): a POST through httpcore +
    h11 took 0.32-0.35 ms of CPU and 0.56-0.58 ms round trip; this path (then with http.client's parser)
    0.16 ms and 0.43 ms. A connection is used by one thread at a time; idle ones wait in a small stack (MAX_IDLE)."""

    def __init__(self, token: str, api_url: str = "https://api.telegram.org", timeout: float = 10.0) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the Bot API URL must be http:// or https:// with a host")
        self._token = token
        self._timeout = timeout
        self._tls = _ssl_context() if parts.scheme == "https" else None
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._path = f"{parts.path.rstrip('/')}/bot{token}"
        self._head = (
            f"Host: {parts.netloc}\r\nUser-Agent: python419\r\nAccept: application/json\r\n"
            "Content-Type: application/json\r\n"
        )
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Close the kept connections; one in use now is closed when its call ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> TelegramClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _checkout(self, deadline: float) -> _Connection:
        now = time.monotonic()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(deadline)
            if conn.reusable(now):
                return conn
            conn.close()

    def _checkin(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self, deadline: float) -> _Connection:
        sock = _open_socket(self._host, self._port, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                # Each of the handshake's reads is bounded by what was left when it began.
                sock.settimeout(_left(deadline))
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _call(self, method: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + self._timeout
        content = json.dumps(payload or {}).encode()
        request = (
            f"POST {self._path}/{method} HTTP/1.1\r\n{self._head}Content-Length: {len(content)}\r\n\r\n"
        ).encode() + content
        conn = None
        try:
            with _whole_call_bound(self._timeout):
                conn = self._checkout(deadline)
                status, raw, closes = conn.exchange(request, deadline)
        except BaseException as exc:
            if conn is not None:
                conn.close()  # whatever broke the call, the connection is in an unknown state
            if not isinstance(exc, Exception):
                raise  # a time limit or an interrupt: not a failed request
            # Refused, reset, dropped, timed out, an answer that is not HTTP (BadAnswer): transient by nature.
            # Cut after redacting: a cut before could leave a piece of the token that redact() misses.
            reason = redact(str(exc) or type(exc).__name__, self._token)[:300]
            raise TelegramError(f"network error: {type(exc).__name__}: {reason}", retryable=True) from None
        if closes:
            conn.close()
        else:
            self._checkin(conn)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            body = None
        if not isinstance(body, dict):
            body = None
        error = classify(status, body)
        if error is not None:
            raise TelegramError(
                redact(error.description, self._token), error.status_code, error.retryable, error.retry_after
            )
        assert body is not None
        result = body.get("result")
        return result if isinstance(result, dict) else {"value": result}

    def send_message(self, chat_id: str, text: str) -> dict[str, Any]:
        return self._call("sendMessage", {"chat_id": chat_id, "text": text, "parse_mode": "HTML"})

    def get_me(self) -> dict[str, Any]:
        return self._call("getMe")

    def get_chat(self, chat_id: str) -> dict[str, Any]:
        """Checks that the bot can reach a chat without sending anything to it."""
        return self._call("getChat", {"chat_id": chat_id})


_clients: dict[tuple[int, str, str, float], TelegramClient] = {}
_clients_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _clients_lock
    _clients_lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_client(token: str, api_url: str, timeout: float) -> TelegramClient:
    """One client per process (and per token/endpoint): a forked child builds its own, never sharing the
    parent's sockets."""
    key = (os.getpid(), token, api_url, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = TelegramClient(token, api_url, timeout)
        return client


TOKEN_PATTERN = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{30,}$")


def token_looks_valid(token: str) -> bool:
    """BotFather tokens look like `123456789:AA...` (digits, colon, 35-ish url-safe characters)."""
    return bool(TOKEN_PATTERN.match(token))

"""A small Telegram Bot API client on httpx: sendMessage, getMe, errors and token redaction.

The bot token is part of every Bot API URL (`/bot<TOKEN>/method`), so any URL or error text could leak it.
Everything that leaves this module as text goes through `redact()`, and httpx's own request logging (full
URLs at INFO) is silenced.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import threading
import time
from typing import Any

import httpcore
import httpx

MESSAGE_LIMIT = 4096  # Telegram's maximum text length for sendMessage
_BOT_PATH = re.compile(r"/bot[^/\s]+")

# httpx logs "HTTP Request: POST https://api.telegram.org/bot<TOKEN>/sendMessage" at INFO.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def redact(text: str, token: str | None = None) -> str:
    """Remove the token (and anything shaped like a Bot API path) from text."""
    if token:
        text = text.replace(token, "<redacted>")
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
        params = payload.get("parameters") or {}
        retry_after = float(params.get("retry_after", 1))
        return TelegramError(description, status_code, retryable=True, retry_after=retry_after)
    if status_code >= 500 or status_code == 200:
        return TelegramError(description, status_code, retryable=True)
    # 400 (chat not found, bad HTML), 401 (token rejected), 403 (bot blocked): sending again cannot help.
    return TelegramError(description, status_code, retryable=False)


# What a failed request raises (httpx.Client turned these into httpx.HTTPError).
_NETWORK_ERRORS: tuple[type[Exception], ...] = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.ProxyError,
    httpcore.UnsupportedProtocol,
)

_deadline = threading.local()  # monotonic time by which the current thread's request must be over


def _remaining(timeout: float | None, error: type[Exception]) -> float:
    """The timeout for one socket operation: its own, cut to what is left of the whole request."""
    deadline: float | None = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout if timeout is not None else 3600.0
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the whole request took longer than its deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        tls = self._stream.start_tls(
            ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(tls)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        timeout = _remaining(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(super().connect_tcp(host, port, timeout, local_address, socket_options))


def _deadline_pool() -> httpcore.ConnectionPool:
    """httpx's connection pool (httpcore) on a network backend that bounds each socket operation by what is
    left of the request's deadline. httpx's timeouts apply to each read separately: a Bot API that trickles
    its answer a byte every 0.7 s never trips a 10 s read timeout, and held a send for 49 s, past its 40 s
    lease, so the sweep started a second sender (issue 12). test_telegram's trickling server fails if a new
    httpcore changes this."""
    return httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=10,
        max_keepalive_connections=2,
        keepalive_expiry=30.0,
        network_backend=_DeadlineBackend(),
    )


class TelegramClient:
    """A Bot API client on one kept connection pool: building a client (its SSL context) for every message
    cost 20.8 ms, a POST on a kept one 0.72 ms (issue 11, ~70 % of a worker's time). Every call, however
    the server dribbles its answer, is over within `timeout` seconds (connect, write and read included)."""

    def __init__(self, token: str, api_url: str = "https://api.telegram.org", timeout: float = 10.0) -> None:
        self._token = token
        self._base = f"{api_url.rstrip('/')}/bot{token}"
        self._timeout = timeout
        # The POST goes straight to the httpcore pool (the network backend that keeps the deadline) rather
        # than through an httpx.Client around it: the Client's layers (URL merging, auth, redirects,
        # cookies, event hooks, Response wrapping) cost 0.2-0.3 ms of CPU per message, a solo worker's
        # largest item after Celery itself (issue 11: 0.37 ms vs 0.55-0.69 ms per POST on a kept
        # connection). (A Client given its own transport ignored HTTP(S)_PROXY already: no change there.)
        self._pool = _deadline_pool()
        url = httpx.URL(self._base)
        self._headers = [
            (b"Host", url.netloc),
            (b"User-Agent", b"python419"),
            (b"Accept", b"application/json"),
            (b"Content-Type", b"application/json"),
        ]
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> TelegramClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        _deadline.at = time.monotonic() + self._timeout
        url = f"{self._base}/{method}"
        try:
            content = json.dumps(payload or {}).encode()
            headers = [*self._headers, (b"Content-Length", str(len(content)).encode())]
            answer = self._pool.request(
                "POST", url, headers=headers, content=content, extensions={"timeout": self._timeouts}
            )
        except _NETWORK_ERRORS as exc:
            # Connection errors, timeouts, a dropped connection: transient by nature.
            reason = redact(str(exc) or type(exc).__name__, self._token)
            raise TelegramError(f"network error: {type(exc).__name__}: {reason}", retryable=True) from None
        finally:
            _deadline.at = None
        status, raw = answer.status, answer.content
        try:
            body = json.loads(raw)
        except ValueError:
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

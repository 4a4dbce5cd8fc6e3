"""A small Telegram Bot API client on httpx: sendMessage, getMe, errors and token redaction.

The bot token is part of every Bot API URL (`/bot<TOKEN>/method`), so any URL or error text could leak it.
Everything that leaves this module as text goes through `redact()`, and httpx's own request logging (full
URLs at INFO) is silenced.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

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


class TelegramClient:
    def __init__(self, token: str, api_url: str = "https://api.telegram.org", timeout: float = 10.0) -> None:
        self._token = token
        self._base = f"{api_url.rstrip('/')}/bot{token}"
        self._timeout = timeout

    def _call(self, method: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            with httpx.Client(timeout=self._timeout) as http:
                response = http.post(f"{self._base}/{method}", json=payload or {})
        except httpx.HTTPError as exc:
            # Connection errors, timeouts, a dropped connection: transient by nature.
            reason = redact(str(exc) or type(exc).__name__, self._token)
            raise TelegramError(f"network error: {type(exc).__name__}: {reason}", retryable=True) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = None
        error = classify(response.status_code, body)
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


TOKEN_PATTERN = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{30,}$")


def token_looks_valid(token: str) -> bool:
    """BotFather tokens look like `123456789:AA...` (digits, colon, 35-ish url-safe characters)."""
    return bool(TOKEN_PATTERN.match(token))

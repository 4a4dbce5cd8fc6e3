"""The bundled products app's settings: the launcher's, plus the Telegram endpoint and the delivery tuning.

Nothing here runs at import: `get_settings()` reads them on first use. Every process of the app (API, workers,
`p419 send`) reads the same settings, so they agree on the data dir and the Telegram endpoint. A user's project
is never read through this class: its TELEGRAM_TIMEOUT is its own business.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from python419.settings import Setting, Settings, load_settings, number, optional_text, stack_env_files


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL such as https://api.telegram.org")
    return value.rstrip("/")


class ProductSettings(Settings):
    FIELDS: ClassVar[dict[str, Setting]] = {
        **Settings.FIELDS,
        "telegram_bot_token": Setting("TELEGRAM_BOT_TOKEN", optional_text),  # a secret: never shown
        "telegram_chat_id": Setting("TELEGRAM_CHAT_ID", optional_text),
        "telegram_api_url": Setting("TELEGRAM_API_URL", http_url, "https://api.telegram.org"),
        "telegram_timeout": Setting("TELEGRAM_TIMEOUT", number(0, 120, above=True), 10.0),
        # Delivery tuning. Defaults follow the write-up (retry after 5 s); tests shorten them.
        "retry_delay": Setting("P419_RETRY_DELAY", number(0, 3600), 5.0),
        "lease_seconds": Setting("P419_LEASE_SECONDS", number(0, 3600, above=True), 40.0),
        "sweep_interval": Setting("P419_SWEEP_INTERVAL", number(0, 3600, above=True), 10.0),
        # Network errors, 5xx and 429 are retried until this long after the product was created (then
        # `failed`).
        "delivery_deadline": Setting("P419_DELIVERY_DEADLINE", number(0, 30 * 86400, above=True), 6 * 3600.0),
        # kombu (Redis): an unacknowledged message comes back after this long; queued outbox rows are re-sent
        # by the sweep after the same time, in case the broker lost them.
        "visibility_timeout": Setting("P419_VISIBILITY_TIMEOUT", number(1, 86400), 3600.0),
    }

    telegram_bot_token: str | None
    telegram_chat_id: str | None
    telegram_api_url: str
    telegram_timeout: float
    retry_delay: float
    lease_seconds: float
    sweep_interval: float
    delivery_deadline: float
    visibility_timeout: float

    def cross_checks(self) -> list[str]:
        problems = super().cross_checks()
        # A send's deadline covers its whole call; the lease keeps 3x that, so the sweep never starts a second
        # sender while the first one still runs.
        if self.lease_seconds <= 3 * self.telegram_timeout:
            problems.append(
                f"P419_LEASE_SECONDS ({self.lease_seconds:g}) must be more than 3 x TELEGRAM_TIMEOUT "
                f"({self.telegram_timeout:g}), or a slow send could be sent twice"
            )
        return problems

    @functools.cached_property
    def database_path(self) -> Path:
        """Worked out once: every task opens its store by this path (a new Path each time was ~2 % of a
        worker's task). `replace()` copies no cached property."""
        return self.data_dir / "p419.db"

    @property
    def token(self) -> str | None:
        return self.telegram_bot_token


@functools.lru_cache(maxsize=1)
def get_settings() -> ProductSettings:
    """The process-wide settings, read on first use. A child of `p419 up` reads the env files the stack
    names (P419_STACK_ENV_FILES); anything else reads .env in the working directory."""
    return load_settings(stack_env_files(os.environ), cls=ProductSettings)

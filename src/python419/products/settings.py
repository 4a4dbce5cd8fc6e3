"""The bundled products app's settings: the launcher's, plus the Telegram endpoint and the delivery tuning.

Nothing here runs at import: `get_settings()` reads them on first use. Every process of the app (API, workers,
`p419 send`) reads the same settings, so they agree on the data dir and the Telegram endpoint. A user's project
is never read through this class: its TELEGRAM_TIMEOUT is its own business.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from python419.settings import Settings, load_settings, stack_env_files


class ProductSettings(Settings):
    telegram_bot_token: SecretStr | None = Field(default=None, validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str | None = Field(default=None, validation_alias="TELEGRAM_CHAT_ID")
    telegram_api_url: str = Field(default="https://api.telegram.org", validation_alias="TELEGRAM_API_URL")
    telegram_timeout: float = Field(default=10.0, gt=0, le=120, validation_alias="TELEGRAM_TIMEOUT")

    # Delivery tuning. Defaults follow the write-up (retry after 5 s); tests shorten them.
    retry_delay: float = Field(default=5.0, ge=0, le=3600, validation_alias="P419_RETRY_DELAY")
    lease_seconds: float = Field(default=40.0, gt=0, le=3600, validation_alias="P419_LEASE_SECONDS")
    sweep_interval: float = Field(default=10.0, gt=0, le=3600, validation_alias="P419_SWEEP_INTERVAL")
    # Network errors, 5xx and 429 are retried until this long after the product was created (then `failed`).
    delivery_deadline: float = Field(
        default=6 * 3600.0, gt=0, le=30 * 86400, validation_alias="P419_DELIVERY_DEADLINE"
    )
    # kombu (Redis): an unacknowledged message comes back after this long; queued outbox rows are re-sent
    # by the sweep after the same time, in case the broker lost them.
    visibility_timeout: float = Field(
        default=3600.0, ge=1, le=86400, validation_alias="P419_VISIBILITY_TIMEOUT"
    )

    @field_validator("telegram_bot_token", "telegram_chat_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> ProductSettings:
        # A send's deadline covers its whole call; the lease keeps 3x that, so the sweep never starts a second
        # sender while the first one still runs.
        if self.lease_seconds <= 3 * self.telegram_timeout:
            raise ValueError(
                f"P419_LEASE_SECONDS ({self.lease_seconds:g}) must be more than 3 x TELEGRAM_TIMEOUT "
                f"({self.telegram_timeout:g}), or a slow send could be sent twice"
            )
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "p419.db"

    @property
    def token(self) -> str | None:
        return self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else None


@functools.lru_cache(maxsize=1)
def get_settings() -> ProductSettings:
    """The process-wide settings, read on first use. A child of `p419 up` reads the env files the stack
    names (P419_STACK_ENV_FILES); anything else reads .env in the working directory."""
    return load_settings(stack_env_files(os.environ), cls=ProductSettings)

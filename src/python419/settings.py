"""The launcher's settings: from the environment and env files (pydantic-settings), read when asked.

Only what p419 itself needs to run any project: the broker, the API's address, the data dir, the platform. The
bundled products app adds its own keys (python419/products/settings.py); a user's project is never judged by
them. What `p419 up` decides for its children travels in its own namespace (`python419.launch.contract`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from python419.addresses import safe_url
from python419.platforms import Platform, detect_platform

BrokerMode = Literal["auto", "redis", "embedded"]
BROKER_MODES: tuple[str, ...] = ("auto", "redis", "embedded")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    redis_host: str = Field(default="127.0.0.1", validation_alias="REDIS_HOST")
    redis_port: int = Field(default=6379, ge=1, le=65535, validation_alias="REDIS_PORT")

    redis_server: str | None = Field(default=None, validation_alias="REDIS_SERVER")  # binary `p419 up` starts

    api_host: str = Field(default="127.0.0.1", validation_alias="P419_API_HOST")
    api_port: int = Field(default=8000, ge=1, le=65535, validation_alias="P419_API_PORT")
    data_dir: Path = Field(default=Path(".p419"), validation_alias="P419_DATA_DIR")
    platform: Platform = Field(default_factory=detect_platform, validation_alias="P419_PLATFORM")
    # auto | redis | embedded | a redis:// URL; what `p419 up` runs. The same as `broker` in the project
    # config and `--broker` on the command line.
    broker: str = Field(default="auto", validation_alias="P419_BROKER")

    @field_validator("platform", mode="before")
    @classmethod
    def _lower_platform(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        return check_broker(value)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)
        return value

    @model_validator(mode="after")
    def _default_redis_url(self) -> Settings:
        # The write-up configured REDIS_HOST/REDIS_PORT; REDIS_URL, when set, wins.
        if self.redis_url is None:
            self.redis_url = f"redis://{self.redis_host}:{self.redis_port}/0"
        return self

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        # Resolved once, here: every child gets the same absolute folder whatever its working directory.
        self.data_dir = Path(os.path.abspath(self.data_dir))
        return self

    @property
    def broker_mode(self) -> BrokerMode:
        """auto/redis/embedded; a URL in P419_BROKER means redis at that URL."""
        return self.broker if self.broker in BROKER_MODES else "redis"  # type: ignore[return-value]

    @property
    def broker_redis_url(self) -> str:
        """The Redis the stack uses: P419_BROKER when it is a URL, else REDIS_URL."""
        return self.broker if self.broker not in BROKER_MODES else str(self.redis_url)

    # --- the data-dir layout: the one place that names these folders ---------------------------------

    @property
    def run_dir(self) -> Path:
        """The running stack's state, lock, ready and stop files."""
        return self.data_dir / "run"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def embedded_dir(self) -> Path:
        return self.data_dir / "broker"


def check_redis_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"must start with redis://, rediss:// or unix:// (got scheme {parts.scheme!r})")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError("has no host, expected e.g. redis://127.0.0.1:6379/0")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"has an invalid port ({exc})") from None
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("port must be 1..65535")


def check_broker(value: str) -> str:
    value = value.strip()
    if value.lower() in BROKER_MODES:
        return value.lower()
    if "://" not in value:
        raise ValueError("must be auto, redis, embedded or a redis:// URL")
    check_redis_url(value)
    return value


def env_names(cls: type[Settings]) -> dict[str, str]:
    """Field names mapped back to the variables a user sets, for error messages."""
    return {
        name: str(field.validation_alias)
        for name, field in cls.model_fields.items()
        if field.validation_alias
    }


ENV_NAMES = env_names(Settings)
# Rules across settings name their variables in the message; the checker that raises them lists them here.
CROSS_FIELD_NAMES = ("P419_LEASE_SECONDS", "TELEGRAM_TIMEOUT")
SECRET_NAMES = frozenset({"TELEGRAM_BOT_TOKEN"})
URL_NAMES = frozenset({"REDIS_URL", "P419_BROKER"})


class SettingsError(Exception):
    """Invalid configuration, as one human line per problem (never includes secret values).

    `names` are the variables at fault, for whoever reports them (the doctor's env.values check)."""

    def __init__(self, message: str, names: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.names = tuple(names)


def settings_error(error: ValidationError, names_of: Mapping[str, str] = ENV_NAMES) -> SettingsError:
    lines: list[str] = []
    names: list[str] = []
    for item in error.errors():
        loc = item.get("loc") or ()
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        if not loc:  # a rule across settings; the message names them
            lines.append(f"invalid settings: {message}")
            names.extend(n for n in CROSS_FIELD_NAMES if n in message)
            continue
        name = names_of.get(str(loc[0]), str(loc[0]))
        names.append(name)
        if name in SECRET_NAMES:
            lines.append(f"invalid setting {name}: {message}")
        else:
            value = item.get("input")
            if name in URL_NAMES and isinstance(value, str):
                value = safe_url(value)  # a malformed URL may still carry a password
            lines.append(f"invalid setting {name}={value!r}: {message}")
    return SettingsError("; ".join(lines), names)


S = TypeVar("S", bound=Settings)


def load_settings(
    env_files: Sequence[Path] | None = None,
    *,
    cls: type[S] = Settings,  # type: ignore[assignment]
    **overrides: Any,
) -> S:
    """Read settings now (no cache). `env_files`: read in order, later ones win; the environment wins over
    all of them. Raises SettingsError with a readable message."""
    files = tuple(env_files) if env_files is not None else (Path(".env"),)
    try:
        return cls(_env_file=files, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise settings_error(exc, env_names(cls)) from None


def stack_env_files(environ: Mapping[str, str]) -> list[Path]:
    """The env files a child of `p419 up` reads (the stack names them); outside a stack, .env here."""
    from python419.launch.contract import ENV_FILES

    raw = environ.get(ENV_FILES)
    if raw is None:
        return [Path(".env")]
    return [Path(p) for p in raw.split(os.pathsep) if p]

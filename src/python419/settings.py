"""The launcher's settings: from the environment and env files, read when asked (standard library only).

Only what p419 itself needs to run any project: the broker, the API's address, the data dir, the platform. The
bundled products app adds its own keys (python419/products/settings.py); a user's project is never judged by
them. What `p419 up` decides for its children travels in its own namespace (`python419.launch.contract`).
Not pydantic-settings: importing it cost `p419 up` ~100 ms before its first child (docs/benchmarks.md, row 8).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from python419.addresses import safe_url
from python419.platforms import PLATFORMS, Platform, detect_platform

BrokerMode = Literal["auto", "redis", "embedded"]
BROKER_MODES: tuple[str, ...] = ("auto", "redis", "embedded")


# --- reading one value ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting: the variable a user sets, its default (or a function making it), and how its text is read
    (`read` raises ValueError with the reason, said after the variable's name)."""

    env: str
    read: Callable[[str], Any]
    default: Any = None
    default_factory: Callable[[], Any] | None = None

    def initial(self) -> Any:
        return self.default_factory() if self.default_factory is not None else self.default


def text(value: str) -> str:
    return value


def optional_text(value: str) -> str | None:
    """A blank value is no value (TELEGRAM_CHAT_ID= in an env file)."""
    return value if value.strip() else None


def number(low: float, high: float, *, integer: bool = False, above: bool = False) -> Callable[[str], Any]:
    """An int or float in [low, high] (`above`: low itself excluded)."""

    def read(value: str) -> Any:
        try:
            got: float = int(value.strip()) if integer else float(value.strip())
        except ValueError:
            raise ValueError("must be an integer" if integer else "must be a number") from None
        if got != got or (got <= low if above else got < low) or got > high:  # NaN is never in range
            raise ValueError(f"must be {'more than ' if above else ''}{low:g}..{high:g}")
        return got

    return read


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


def redis_url(value: str) -> str:
    check_redis_url(value)
    return value


def platform(value: str) -> Platform:
    name = value.strip().lower()
    if name not in PLATFORMS:
        raise ValueError(f"must be one of {', '.join(PLATFORMS)}")
    return name


def absolute_path(value: str) -> Path:
    """Resolved once, here: every child gets the same absolute folder whatever its working directory."""
    return Path(os.path.abspath(value))


# --- the launcher's settings ----------------------------------------------------------------------

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


def _shown(name: str, value: str) -> str:
    if name in SECRET_NAMES:
        return f"invalid setting {name}"
    return f"invalid setting {name}={safe_url(value) if name in URL_NAMES else value!r}"


class Settings:
    """Each field: a `Setting` in FIELDS (field name → variable). Precedence: keyword overrides (by variable
    name) > the environment > the env files (later ones win) > defaults; variable names in any case."""

    FIELDS: ClassVar[dict[str, Setting]] = {
        "redis_url": Setting("REDIS_URL", redis_url),
        "redis_host": Setting("REDIS_HOST", text, "127.0.0.1"),
        "redis_port": Setting("REDIS_PORT", number(1, 65535, integer=True), 6379),
        "redis_server": Setting("REDIS_SERVER", text),  # the binary `p419 up` starts
        "api_host": Setting("P419_API_HOST", text, "127.0.0.1"),
        "api_port": Setting("P419_API_PORT", number(1, 65535, integer=True), 8000),
        "data_dir": Setting("P419_DATA_DIR", absolute_path, default_factory=lambda: absolute_path(".p419")),
        "platform": Setting("P419_PLATFORM", platform, default_factory=detect_platform),
        # auto | redis | embedded | a redis:// URL; what `p419 up` runs. The same as `broker` in the project
        # config and `--broker` on the command line.
        "broker": Setting("P419_BROKER", check_broker, "auto"),
    }

    redis_url: str
    redis_host: str
    redis_port: int
    redis_server: str | None
    api_host: str
    api_port: int
    data_dir: Path
    platform: Platform
    broker: str

    def __init__(self, _env_file: Iterable[Path] = (Path(".env"),), **overrides: Any) -> None:
        try:
            given = {key.upper(): value for key, value in read_env_files(_env_file).items()}
        except OSError as exc:
            raise SettingsError(f"cannot read the env file {exc.filename}: {exc.strerror or exc}") from None
        given.update({key.upper(): value for key, value in os.environ.items()})
        given.update({key.upper(): str(value) for key, value in overrides.items()})
        problems: list[tuple[str, str]] = []
        names: list[str] = []
        fields_set: set[str] = set()
        for field, setting in self.FIELDS.items():
            raw = given.get(setting.env)
            if raw is None:
                value = setting.initial()
            else:
                fields_set.add(field)
                try:
                    value = setting.read(raw)
                except ValueError as exc:
                    problems.append((setting.env, f"{_shown(setting.env, raw)}: {exc}"))
                    continue
            object.__setattr__(self, field, value)
        object.__setattr__(self, "fields_set", frozenset(fields_set))
        if not problems:
            for message in self.cross_checks():
                names.extend(n for n in CROSS_FIELD_NAMES if n in message)
                problems.append(("", f"invalid settings: {message}"))
        if problems:
            names.extend(name for name, _ in problems if name)
            raise SettingsError("; ".join(line for _, line in problems), names)

    fields_set: frozenset[str]  # the fields a variable or an override gave (not defaults)

    def cross_checks(self) -> list[str]:
        """Rules across fields, checked when each field is valid; each broken one's message."""
        if self.redis_url is None:
            # The write-up configured REDIS_HOST/REDIS_PORT; REDIS_URL, when set, wins.
            object.__setattr__(self, "redis_url", f"redis://{self.redis_host}:{self.redis_port}/0")
        return []

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"settings are read-only: use replace({name}=...)")

    def replace(self: S, **changes: Any) -> S:
        """A copy with these fields changed (already typed values, as the caller decided them)."""
        copy = object.__new__(type(self))
        copy.__dict__.update({field: self.__dict__[field] for field in self.FIELDS})  # no cached properties
        copy.__dict__.update(changes)
        copy.__dict__["fields_set"] = self.fields_set | changes.keys()
        return copy

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{field}={'**********' if s.env in SECRET_NAMES and getattr(self, field) else getattr(self, field)!r}"
            for field, s in self.FIELDS.items()
        )
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]

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


S = TypeVar("S", bound=Settings)


def env_names(cls: type[Settings]) -> dict[str, str]:
    """Field names mapped to the variables a user sets, for error messages."""
    return {field: setting.env for field, setting in cls.FIELDS.items()}


ENV_NAMES = env_names(Settings)


# --- env files ------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str | None]:
    """One env file as python-dotenv reads it (quotes, `export`, comments, ${VAR} interpolation); a name
    without `=` maps to None. The one place p419 reads env files; python-dotenv is imported only when a file
    is there to read (its import alone is ~15 ms of `p419 up`'s start)."""
    # UTF-8, as compose reads it; a stray byte of another encoding shows as U+FFFD instead of stopping p419.
    # An unreadable file raises OSError (with its name): a start fails with that reason, never a traceback.
    with path.open(encoding="utf-8", errors="replace") as stream:
        from dotenv import dotenv_values

        return dict(dotenv_values(stream=stream))


def read_env_files(paths: Iterable[Path]) -> dict[str, str]:
    """The files that exist, in order (later ones win); names without a value left out."""
    values: dict[str, str] = {}
    for path in paths:
        if path.is_file():
            values.update({k: v for k, v in read_env_file(path).items() if v is not None})
    return values


def load_settings(
    env_files: Sequence[Path] | None = None,
    *,
    cls: type[S] = Settings,  # type: ignore[assignment]
    **overrides: Any,
) -> S:
    """Read settings now (no cache). `env_files`: read in order, later ones win; the environment wins over
    all of them. Raises SettingsError with a readable message."""
    files = tuple(env_files) if env_files is not None else (Path(".env"),)
    return cls(files, **overrides)


def stack_env_files(environ: Mapping[str, str]) -> list[Path]:
    """The env files a child of `p419 up` reads (the stack names them); outside a stack, .env here."""
    from python419.launch.contract import ENV_FILES

    raw = environ.get(ENV_FILES)
    if raw is None:
        return [Path(".env")]
    return [Path(p) for p in raw.split(os.pathsep) if p]

"""Session-wide real parts: one redis-server, one worker, one API, one fake Telegram Bot API.

Tests that kill or stop something start their own with `make_stack`, so the shared ones stay healthy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.fake_telegram import FakeTelegram
from tests.procs import RedisServer, Stack, free_port

if TYPE_CHECKING:
    from tests.user_stacks import UserStack

TOKEN = "123456789:AAFakeTokenForTests_abcdefghijklmnopqrstu"
CHAT_ID = "4242"
OUR_PREFIXES = ("REDIS_", "TELEGRAM_", "P419_")


def clean_environ() -> dict[str, str]:
    """The test process's environment without any of our settings, so a developer's .env or shell can't leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}


def stack_env(redis_url: str, data_dir: Path, telegram: FakeTelegram, **extra: str) -> dict[str, str]:
    return {
        **clean_environ(),
        "REDIS_URL": redis_url,
        "P419_DATA_DIR": str(data_dir),
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_CHAT_ID": telegram.chat_id,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_TIMEOUT": "0.9",  # lease 3 s must outlast 3 timeouts
        # Short delays so retries and lease expiry happen in seconds, not minutes.
        "P419_RETRY_DELAY": "0.3",
        "P419_LEASE_SECONDS": "3",
        "P419_SWEEP_INTERVAL": "0.5",
        "P419_DELIVERY_DEADLINE": "60",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@pytest.fixture(scope="session")
def telegram() -> Iterator[FakeTelegram]:
    with FakeTelegram(TOKEN, CHAT_ID) as fake:
        yield fake


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
    redis_server: RedisServer, telegram: FakeTelegram, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logdir = tmp_path_factory.mktemp("stack")
    shared = Stack(stack_env(redis_server.url, logdir / "data", telegram), logdir, free_port())
    try:
        shared.start_worker("shared@%h")
        shared.start_api()
        yield shared
    finally:
        shared.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.api_url, timeout=10) as client:
        yield client


@pytest.fixture
def make_stack(
    redis_server: RedisServer, telegram: FakeTelegram, tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    """A private stack (own data dir, own Redis database or server) for tests that break things."""
    made: list[Stack] = []

    def make(redis_url: str | None = None, **extra: str) -> Stack:
        url = redis_url or redis_server.url.rsplit("/", 1)[0] + f"/{len(made) + 1}"
        logdir = tmp_path / f"stack{len(made)}"
        logdir.mkdir()
        made.append(Stack(stack_env(url, logdir / "data", telegram, **extra), logdir, free_port()))
        return made[-1]

    yield make
    for s in made:
        s.stop()


@pytest.fixture(scope="session")
def pinned_venv() -> Path:
    """The pinned fixture's own venv: celery 5.2.7, fastapi 0.95.0, ... on the oldest Python here."""
    from tests.venvs import PINNED, project_venv

    return project_venv(PINNED)


@pytest.fixture(scope="session")
def latest_venv() -> Path:
    """The newest releases of the fixture projects' stack, on the newest Python here."""
    from tests.venvs import LATEST, newest_python, project_venv

    return project_venv(LATEST, newest_python())


@pytest.fixture
def user_stacks() -> Iterator[list[UserStack]]:
    """`p419 up` stacks a test started (tests/user_stacks.py): killed at the end, even when the test failed."""
    started: list[UserStack] = []
    yield started
    for stack in started:
        stack.kill()

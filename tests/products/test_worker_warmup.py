"""A worker makes its Bot API client and its SQLite connection before it says it is ready, not in its
first task (issue 11: the first task per worker took 0.10-0.29 s, the SSL context among it)."""

from __future__ import annotations

import os
from pathlib import Path

from python419.products import telegram
from python419.products.settings import ProductSettings as Settings
from python419.products.store import open_store
from python419.products.tasks.worker_hooks import warm_up
from tests.conftest import CHAT_ID, TOKEN


def settings_for(tmp_path: Path, **extra: str) -> Settings:
    return Settings(P419_DATA_DIR=str(tmp_path), **extra)  # type: ignore[arg-type]


def test_warm_up_makes_the_client_and_this_threads_connection(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_CHAT_ID=CHAT_ID, TELEGRAM_API_URL="http://127.0.0.1:9"
    )
    key = (os.getpid(), TOKEN, settings.telegram_api_url, settings.telegram_timeout)
    telegram._clients.pop(key, None)
    warm_up(settings)
    client = telegram._clients.get(key)
    assert client is not None, "no Bot API client made at start"
    # the task's own lookup finds the same client: nothing left to build in the first task
    assert telegram.shared_client(TOKEN, settings.telegram_api_url, settings.telegram_timeout) is client
    store = open_store(settings.database_path)
    assert getattr(store._local, "db", None) is not None, "no SQLite connection for the task thread"


def test_warm_up_in_dry_run_makes_no_client(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, TELEGRAM_BOT_TOKEN="", TELEGRAM_CHAT_ID="")
    before = dict(telegram._clients)
    warm_up(settings)
    assert telegram._clients == before
    assert getattr(open_store(settings.database_path)._local, "db", None) is not None

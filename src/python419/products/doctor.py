"""The bundled products app's own part of `p419 doctor`: its Telegram settings, its outbox, its task.

The launcher's checks (python419/doctor/checks/) know nothing of this app; the doctor adds these only when the app
it checks is this one (no p419 configuration, or `--app` naming it), never on a user's project:

- telegram.token, telegram.chat: is the token well-formed and accepted, can the bot reach the chat? Both use only
  read-only Bot API calls (getMe, getChat): the doctor never sends a message;
- queue: messages waiting in the stack's queue, and the oldest notification the outbox has not finished;
- env.values: a token without a chat id (or the reverse) means dry-run;
- registration and workers: its task, `tasks.notifications.send_tg_notification`, which every message names;
- api: its /health answering on the API port.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from python419.doctor.context import Context
from python419.doctor.model import AppChecks, Check, Outcome, failed, passed, warned
from python419.products import TASK_NAME  # the wire name every worker must know (no Celery imported)
from python419.products.settings import ProductSettings
from python419.products.store import Notification, Store
from python419.products.telegram import TelegramClient, TelegramError, token_looks_valid
from python419.settings import ENV_NAMES, Settings, env_names

TASK_MODULE = TASK_NAME.rsplit(".", 1)[0]  # Celery names a task module.function by default
LEGACY_QUEUE = "celery"

CALL_TIMEOUT = 2.0
HEALTH_TIMEOUT = 1.0
DRY_RUN = "notifications run in dry-run (the worker logs them instead of sending)"
SET_BOTH = "set TELEGRAM_BOT_TOKEN (from @BotFather) and TELEGRAM_CHAT_ID in .env"
REJECTED = (401, 404)  # the Bot API answers 404 for a token it does not know at all
# Retries (3 x 5 s), leases (30 s) and sweeps (10 s) settle well within this; older means nothing is delivering.
STUCK_AFTER = 300.0


def product_settings(ctx: Context) -> ProductSettings:
    """The app's settings: the doctor reads them as ProductSettings whenever it runs this app's checks."""
    settings = ctx.config
    if not isinstance(settings, ProductSettings):
        raise TypeError(f"the bundled app's checks need its settings, not {type(settings).__name__}")
    return settings


# --- telegram.token, telegram.chat ------------------------------------------------------------------


def client(settings: ProductSettings) -> TelegramClient:
    assert settings.token is not None
    return TelegramClient(
        settings.token, settings.telegram_api_url, min(settings.telegram_timeout, CALL_TIMEOUT)
    )


def get_me_outcome(error: TelegramError, api_url: str) -> Outcome:
    """Pure: why getMe failed."""
    if error.status_code in REJECTED:
        return failed(
            f"token rejected by {api_url} ({error})",
            "the token was revoked or mistyped: copy the current one from @BotFather (/mybots → API Token)",
        )
    if error.status_code is None:
        return failed(
            f"cannot reach {api_url}: {error.description}", "check the network or proxy, and TELEGRAM_API_URL"
        )
    return failed(f"{api_url} answered getMe with {error}", "try again later; check TELEGRAM_API_URL")


def get_chat_outcome(error: TelegramError, chat_id: str) -> Outcome:
    """Pure: why getChat failed."""
    if error.status_code in REJECTED:
        return warned("not checked: the token was rejected (see telegram.token)", "fix telegram.token first")
    if error.status_code == 400:
        return failed(
            f"chat {chat_id} is not reachable for this bot ({error})",
            "send /start to the bot from that chat (or add the bot to the group), and check TELEGRAM_CHAT_ID",
        )
    if error.status_code == 403:
        return failed(
            f"the bot may not access chat {chat_id} ({error})", "unblock the bot, or add it back to the group"
        )
    if error.status_code is None:
        return warned(f"not checked: {error.description} (see telegram.token)", "fix telegram.token first")
    return failed(f"getChat for {chat_id} failed: {error}", "try again later")


def check_token(ctx: Context) -> Outcome:
    settings = product_settings(ctx)
    if not settings.token:
        return warned(f"no TELEGRAM_BOT_TOKEN: {DRY_RUN}", SET_BOTH)
    if not token_looks_valid(settings.token):
        return failed(
            "TELEGRAM_BOT_TOKEN does not look like a bot token (expected digits, a colon, ~35 characters)",
            "copy the token again from @BotFather, without quotes or spaces",
        )
    try:
        me = client(settings).get_me()
    except TelegramError as exc:
        return get_me_outcome(exc, settings.telegram_api_url)
    return passed(f"token accepted by {settings.telegram_api_url}: bot @{me.get('username', '?')}")


def check_chat(ctx: Context) -> Outcome:
    settings = product_settings(ctx)
    chat_id = settings.telegram_chat_id
    if not settings.token:
        return warned(f"not checked: no TELEGRAM_BOT_TOKEN; {DRY_RUN}", SET_BOTH)
    if not chat_id:
        return warned(
            f"no TELEGRAM_CHAT_ID: {DRY_RUN}", "set TELEGRAM_CHAT_ID (a number; group ids start with -)"
        )
    if not token_looks_valid(settings.token):
        return warned("not checked: the token is malformed (see telegram.token)", "fix telegram.token first")
    try:
        chat = client(settings).get_chat(chat_id)
    except TelegramError as exc:
        return get_chat_outcome(exc, chat_id)
    name = chat.get("title") or chat.get("username") or chat.get("first_name") or ""
    return passed(f"chat {chat_id} reachable ({chat.get('type', 'chat')}{' ' + str(name) if name else ''})")


# --- queue: the broker's backlog and the outbox's -----------------------------------------------------


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def backlog_outcome(
    waiting: int | None,
    database: Path,
    exists: bool,
    oldest: Notification | None,
    now: float,
    queues: tuple[str, ...] = (LEGACY_QUEUE,),
) -> Outcome:
    """Pure: how much is waiting, and whether the oldest open notification looks stuck."""
    names = ", ".join(f"'{q}'" for q in queues)
    queue = (
        f"{waiting} message(s) waiting in {names}"
        if waiting is not None
        else "queue length unknown (broker unreachable)"
    )
    if not exists:
        return passed(f"{queue}; no outbox yet ({database} does not exist)")
    if oldest is None:
        return passed(f"{queue}; no open notifications in {database}")
    age = now - oldest.created_at
    detail = (
        f"{queue}; oldest open notification #{oldest.id} (product {oldest.product_id}) "
        f"is {oldest.status} for {format_age(age)}"
    )
    if age > STUCK_AFTER:
        return warned(
            f"{detail}: notifications are not being delivered",
            "make sure a worker runs and the broker is reachable (see workers, broker): p419 up",
        )
    return passed(detail)


def check_queue(ctx: Context) -> Outcome:
    probe = ctx.broker.get()
    database = ctx.path(product_settings(ctx).database_path)
    exists = database.is_file()
    # Store() would create a missing database; the doctor only looks.
    oldest = Store(database).oldest_open() if exists else None
    return backlog_outcome(probe.waiting, database, exists, oldest, time.time(), ctx.queues)


# --- what the app adds to the launcher's checks -------------------------------------------------------


def stack_queues(settings: Settings | None) -> tuple[str, ...]:
    """Its stack's own queue (named after its database) and Celery's default, where the original project's
    producer sends."""
    if not isinstance(settings, ProductSettings):
        return (LEGACY_QUEUE,)
    from python419.products.tasks.queues import queue_name

    return (queue_name(settings), LEGACY_QUEUE)


def telegram_pairing(settings: Settings) -> tuple[str, str] | None:
    """env.values: a token without a chat id (or the reverse) is half-configured: notifications run in dry-run."""
    if not isinstance(settings, ProductSettings):
        return None
    if bool(settings.token) == bool(settings.telegram_chat_id):
        return None
    missing = "TELEGRAM_CHAT_ID" if settings.token else "TELEGRAM_BOT_TOKEN"
    return f"{missing} is missing, so notifications run in dry-run", f"set {missing} as well"


def health_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/health" if ":" in host else f"http://{host}:{port}/health"


def our_health(url: str) -> dict[str, Any] | None:
    """The /health body when our API answers (it always reports "database"), else None."""
    try:
        body = httpx.get(url, timeout=HEALTH_TIMEOUT).json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) and "database" in body else None


def api_answers(host: str, port: int) -> Outcome | None:
    """The api check, when the API port is held: our API answering /health there is the stack's."""
    url = health_url(host, port)
    health = our_health(url)
    if health is None:
        return None
    return passed(f"our API answers {url} (status {health.get('status', '?')})")


PRODUCTS = AppChecks(
    name="the bundled products app",
    tasks=(TASK_NAME,),
    checks=(
        ("workers", Check("queue", check_queue, 3.0)),
        ("api", Check("telegram.token", check_token, 3.0, "fail", "check the network and TELEGRAM_API_URL")),
        ("telegram.token", Check("telegram.chat", check_chat, 3.0)),
    ),
    setting_names=frozenset(env_names(ProductSettings).values()) - frozenset(ENV_NAMES.values()),
    aliases={"BOT_TOKEN": "TELEGRAM_BOT_TOKEN", "CHAT_ID": "TELEGRAM_CHAT_ID"},
    settings_warning=telegram_pairing,
    queues=stack_queues,
    api_answers=api_answers,
    api_name="the python419 API",
)

"""telegram.token and telegram.chat: is the token well-formed and accepted, can the bot reach the chat?
Both use only read-only Bot API calls (getMe, getChat): the doctor never sends a message."""

from __future__ import annotations

from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.settings import Settings
from python419.telegram import TelegramClient, TelegramError, token_looks_valid

CALL_TIMEOUT = 2.0
DRY_RUN = "notifications run in dry-run (the worker logs them instead of sending)"
SET_BOTH = "set TELEGRAM_BOT_TOKEN (from @BotFather) and TELEGRAM_CHAT_ID in .env"
REJECTED = (401, 404)  # the Bot API answers 404 for a token it does not know at all


def client(settings: Settings) -> TelegramClient:
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
    settings = ctx.config
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
    settings = ctx.config
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

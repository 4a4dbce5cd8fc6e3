"""The last line of defence: every detail and fix passes through here before it is printed.

Checks already avoid printing secrets (safe_url, TelegramClient's redaction); this also catches what a library
or the user's own code put into an error message, including values under misspelled names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

from python419.products.telegram import redact as redact_bot_paths

OUR_PREFIXES = ("REDIS_", "TELEGRAM_", "P419_")
SECRET_WORDS = ("TOKEN", "PASSWORD", "PASS", "SECRET")
MIN_SECRET = 3  # shorter values would blank out ordinary words


def secrets_in(variables: Mapping[str, str | None]) -> set[str]:
    """Values that must never be printed: anything under a secret-sounding name, and URL passwords."""
    found: set[str] = set()
    for key, value in variables.items():
        if not value:
            continue
        if any(word in key.upper() for word in SECRET_WORDS):
            found.add(value)
        if "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.update({password, unquote(password)})
    return {s for s in found if len(s) >= MIN_SECRET}


def ours(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.upper().startswith(OUR_PREFIXES)}


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return redact_bot_paths(text)

"""env.file, env.keys, env.values: where the settings come from, names that look like typos of ours, and
values that do not validate. "Ours": the launcher's settings, plus the app's own when the doctor checks the
bundled app (its Telegram settings mean nothing to a user's project, which may have its own TELEGRAM_TOKEN)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from python419.doctor.context import Context, EnvFile
from python419.doctor.model import Outcome, failed, passed, warned
from python419.doctor.redact import ours
from python419.project import ENV_KEYS
from python419.settings import ENV_NAMES

KNOWN = frozenset({*ENV_NAMES.values(), *ENV_KEYS.values()})  # the launcher's
# Names people reach for that difflib cannot match to ours.
ALIASES = {
    "REDIS_PASSWORD": "REDIS_URL (redis://:PASSWORD@host:port/0)",
    "REDIS_DB": "REDIS_URL (the database is its path: redis://host:port/DB)",
    "CELERY_BROKER_URL": "REDIS_URL",
    "BROKER_URL": "REDIS_URL",
}
# TELEGRAM_TOKEN→TELEGRAM_BOT_TOKEN scores 0.875; unrelated names like DATABASE_URL stay below 0.5.
CUTOFF = 0.8


NO_ALIASES: Mapping[str, str] = MappingProxyType({})


def suggestion(
    key: str, known: frozenset[str] = KNOWN, aliases: Mapping[str, str] = NO_ALIASES
) -> str | None:
    """The setting `key` was probably meant to be, or None when it is ours or unrelated. `known`, `aliases`:
    the names of the settings checked (the launcher's, and the bundled app's when it is checked)."""
    name = key.upper()
    if name in known:
        return None
    if name in ALIASES or name in aliases:
        return {**ALIASES, **aliases}[name]
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=CUTOFF)
    return close[0] if close else None


def known_names(ctx: Context) -> tuple[frozenset[str], Mapping[str, str]]:
    if ctx.plugin is None:
        return KNOWN, NO_ALIASES
    return KNOWN | ctx.plugin.setting_names, ctx.plugin.aliases


def misspellings(
    sources: Iterable[tuple[str, Iterable[str]]],
    known: frozenset[str] = KNOWN,
    aliases: Mapping[str, str] = NO_ALIASES,
) -> list[tuple[str, str, str]]:
    """(key, suggestion, where) for every key that looks like a typo of one of our names."""
    found = []
    for where, keys in sources:
        for key in sorted(keys):
            guess = suggestion(key, known, aliases)
            if guess:
                found.append((key, guess, where))
    return found


def check_env_file(ctx: Context) -> Outcome:
    env = ctx.env_file
    if env.found:
        return passed(f"{env.path} ({len(env.values)} key(s))")
    if env.elsewhere is not None:
        return warned(
            f"no .env in {ctx.cwd}; there is {env.elsewhere}, but p419 reads .env from the current folder only",
            f"run p419 from {env.elsewhere.parent}, or copy that file to {env.path}",
        )
    return passed(f"no .env in {ctx.cwd}: settings come from the environment and defaults")


def check_env_keys(ctx: Context) -> Outcome:
    sources = [
        (f".env ({ctx.env_file.path})", ctx.env_file.values.keys()),
        ("environment", ours(ctx.environ)),
    ]
    found = misspellings(sources, *known_names(ctx))
    if not found:
        return passed("no misspelled setting names in .env or the environment")
    detail = "; ".join(
        f"{key} in {where} is not a p419 setting: did you mean {guess}?" for key, guess, where in found
    )
    fix = "; ".join(f"use {guess} instead of {key}" for key, guess, _ in found)
    return warned(detail, fix)


def source_of(name: str, environ: Mapping[str, str], env_file: EnvFile) -> str | None:
    """Where a setting's value comes from, in the settings' order: environment first, then .env."""
    if any(key.upper() == name for key in environ):
        return "environment"
    if any(key.upper() == name for key in env_file.values):
        return ".env"
    return None


def check_env_values(ctx: Context) -> Outcome:
    environ, env_file = ctx.environ, ctx.env_file
    if ctx.settings is None:
        error = ctx.settings_error or "invalid settings"
        names = sorted(set(ctx.settings_error_names))
        where = {name: source_of(name, environ, env_file) or "the environment" for name in names}
        places = ", ".join(f"{n} in {env_file.path if w == '.env' else w}" for n, w in where.items())
        if ctx.project is None:  # the p419 configuration itself: the error names its file and key
            return failed(
                error, "correct the p419 configuration where the error says (p419.toml or [tool.p419])"
            )
        return failed(error, f"correct {places or 'the settings'}")
    known, _ = known_names(ctx)
    sources = {name: source_of(name, environ, env_file) for name in sorted(known)}
    given = [f"{name} ({where})" for name, where in sources.items() if where]
    detail = "all settings valid; " + (f"set: {', '.join(given)}" if given else "all defaults")
    warning = ctx.plugin.settings_warning(ctx.settings) if ctx.plugin else None
    if warning is not None:
        return warned(f"{detail}; {warning[0]}", warning[1])
    return passed(detail)

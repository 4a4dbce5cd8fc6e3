"""exposure.api and exposure.redis: is anything listening beyond this machine without a password?"""

from __future__ import annotations

from python419.doctor.context import Context
from python419.doctor.model import Outcome, passed, warned
from python419.doctor.probes.broker_probe import BrokerProbe, is_loopback

# Redis's default when no bind is configured: with protected-mode on, it refuses remote clients anyway.
DEFAULT_BIND = {"*", "-::*"}
PASSWORD_FIX = "set requirepass in redis.conf and put it in REDIS_URL (redis://:PASSWORD@host:port/0)"


def api_exposure(host: str, bundled: bool = True) -> Outcome:
    """`bundled`: the bundled app's API, which has no authentication (a user's API may have its own)."""
    if is_loopback(host):
        return passed(f"the API listens on {host} (loopback only)")
    if not bundled:
        return warned(
            f"P419_API_HOST={host}: the API is reachable from the network, not only from this machine",
            "set P419_API_HOST=127.0.0.1 unless it must be reachable (and then it should authenticate)",
        )
    return warned(
        f"P419_API_HOST={host}: the API, which has no authentication, is reachable from the network",
        "set P419_API_HOST=127.0.0.1, or put the API behind a proxy that authenticates",
    )


def redis_listens_beyond_loopback(bind: str, protected_mode: str | None) -> bool:
    """Pure: from CONFIG GET bind / protected-mode of a Redis that has no password."""
    addresses = bind.split()
    if set(addresses) == DEFAULT_BIND and protected_mode == "yes":
        return False
    return not all(is_loopback(address.lstrip("-")) for address in addresses)


def redis_exposure(probe: BrokerProbe) -> Outcome:
    if probe.kind == "embedded":
        return passed("embedded broker: files on this machine, no network listener")
    if probe.has_password:
        return passed(f"Redis at {probe.url} is used with a password")
    if not probe.local:
        return warned(
            f"Redis at {probe.host}:{probe.port} is used over the network without a password: "
            "anyone who can reach it can read and inject tasks",
            PASSWORD_FIX,
        )
    if not probe.ok:
        return passed(f"REDIS_URL points at loopback ({probe.host}); Redis is not running, nothing listens")
    if probe.bind is None:
        return passed(
            f"Redis at {probe.url} is on loopback; its bind setting is not readable (CONFIG disabled)"
        )
    if redis_listens_beyond_loopback(probe.bind, probe.protected_mode):
        return warned(
            f"the local Redis listens beyond loopback (bind {probe.bind!r}, protected-mode "
            f"{probe.protected_mode}) and has no password",
            f"set `bind 127.0.0.1 -::1` in redis.conf, or {PASSWORD_FIX}",
        )
    return passed(f"Redis at {probe.url} accepts loopback clients only (bind {probe.bind!r})")


def check_api_exposure(ctx: Context) -> Outcome:
    return api_exposure(ctx.config.api_host, ctx.bundled)


def check_redis_exposure(ctx: Context) -> Outcome:
    return redis_exposure(ctx.broker.get())

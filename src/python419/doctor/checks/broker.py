"""broker: reachable, which Redis, how fast; and when it is not, exactly why and what `p419 up` will do."""

from __future__ import annotations

from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.doctor.probes.broker_probe import BROKER_TIMEOUT, BrokerProbe
from python419.platforms import Platform
from python419.redis_server import redis_binary, redis_install_hint

URL_FIX = "put the right password in REDIS_URL: redis://:PASSWORD@host:port/0"


def broker_outcome(probe: BrokerProbe, platform: Platform, redis_binary: str | None) -> Outcome:
    """Pure: the probe's findings as a verdict. `redis_binary` matters only for a local broker that is down."""
    if probe.kind == "embedded":
        if probe.error_kind == "missing":
            return warned(
                f"embedded broker (P419_BROKER=embedded): {probe.error}",
                "it is created when the stack starts: p419 up (or p419 worker)",
            )
        return passed(f"embedded broker (P419_BROKER=embedded) at {probe.url}")
    if probe.ok:
        rtt = f"{probe.rtt_ms:.1f} ms" if probe.rtt_ms is not None else "?"
        detail = f"Redis {probe.version} at {probe.url}, PING round trip {rtt}"
        if not probe.has_password:
            return warned(
                f"{detail}; it has no password: any local process can queue tasks for your workers "
                "(p419 up --redis-password, or redis_password = true, gives the Redis it starts a generated one)",
                "set requirepass in its config and put the password in REDIS_URL: redis://:PASSWORD@host:port/0",
            )
        return passed(detail)
    where = f"{probe.host}:{probe.port}" if probe.host else probe.url
    if probe.error_kind == "refused":
        return _refused(probe, where, platform, redis_binary)
    if probe.error_kind == "timeout":
        return failed(
            f"{where} did not answer within {BROKER_TIMEOUT:g} s ({probe.error}): something there accepts "
            "connections but does not speak Redis, or a firewall drops the packets",
            "check that REDIS_URL's host and port are Redis's, and any firewall in between",
        )
    if probe.error_kind == "auth":
        if probe.has_password:
            return failed(f"Redis at {probe.url} rejected the password in REDIS_URL ({probe.error})", URL_FIX)
        return failed(
            f"Redis at {probe.url} requires a password and REDIS_URL has none ({probe.error})", URL_FIX
        )
    return failed(
        f"cannot connect to {probe.url}: {probe.error}",
        "check REDIS_URL: host name, port, and rediss:// for TLS",
    )


def _refused(probe: BrokerProbe, where: str, platform: Platform, redis_binary: str | None) -> Outcome:
    detail = f"connection to {where} refused: Redis is not running ({probe.url})"
    if not probe.local:
        return failed(detail, f"start Redis on {probe.host}, or correct REDIS_URL")
    if redis_binary:
        return failed(
            f"{detail}; a Redis server is installed: {redis_binary}",
            f"start the stack with `p419 up` (it starts Redis), or run: {redis_binary} --port {probe.port}",
        )
    looked = "REDIS_SERVER, PATH" + (", Memurai and Redis install folders" if platform == "windows" else "")
    return failed(
        f"{detail}; no Redis server found ({looked}), so `p419 up` will use the embedded broker",
        f"install Redis: {redis_install_hint(platform)}; or use the embedded broker: P419_BROKER=embedded",
    )


def check_broker(ctx: Context) -> Outcome:
    probe = ctx.broker.get()
    binary = None
    if probe.kind == "redis" and probe.error_kind == "refused" and probe.local and ctx.settings is not None:
        binary = redis_binary(ctx.settings, ctx.platform)  # the same lookup as p419 up's
    return broker_outcome(probe, ctx.platform, binary)

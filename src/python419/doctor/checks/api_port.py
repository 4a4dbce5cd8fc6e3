"""api: can the API listen on P419_API_HOST:P419_API_PORT — free, already ours, or someone else's?"""

from __future__ import annotations

import errno
import socket
from typing import Any

import httpx

from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed
from python419.platforms import Platform
from python419.ports import port_owner, try_bind

HEALTH_TIMEOUT = 1.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def health_url(host: str, port: int) -> str:
    target = WILDCARDS.get(host, host)
    return f"http://[{target}]:{port}/health" if ":" in target else f"http://{target}:{port}/health"


def our_health(url: str) -> dict[str, Any] | None:
    """The /health body when our API answers (it always reports "database"), else None."""
    try:
        body = httpx.get(url, timeout=HEALTH_TIMEOUT).json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) and "database" in body else None


def find_listener_hint(platform: Platform, port: int) -> str:
    if platform == "windows":
        return f"netstat -ano | findstr :{port}"
    return f"lsof -nP -iTCP:{port} -sTCP:LISTEN"


def held_outcome(host: str, port: int, owner: str | None, platform: Platform) -> Outcome:
    """Pure: the port is taken and what answers there is not our API."""
    who = (
        owner
        or f"another program (not visible to this user; find it with: {find_listener_hint(platform, port)})"
    )
    return failed(
        f"{host}:{port} (P419_API_PORT) is held by {who}, which is not the python419 API",
        f"stop {owner or 'that program'}, or set P419_API_PORT to a free port",
    )


def bind_error_outcome(host: str, port: int, error: OSError) -> Outcome:
    if error.errno == errno.EADDRNOTAVAIL:
        return failed(
            f"P419_API_HOST={host} is not an address of this machine ({error.strerror})",
            "set P419_API_HOST=127.0.0.1 (or 0.0.0.0 to listen on every interface)",
        )
    if error.errno == errno.EACCES:
        return failed(f"no permission to listen on port {port}", "use P419_API_PORT above 1023, e.g. 8000")
    return failed(
        f"cannot listen on {host}:{port}: {error}", "set P419_API_HOST/P419_API_PORT to a usable address"
    )


def in_use(error: OSError) -> bool:
    return (
        error.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1))
        or getattr(error, "winerror", 0) == 10048
    )


def check_api(ctx: Context) -> Outcome:
    host, port = ctx.config.api_host, ctx.config.api_port
    try:
        error = try_bind(host, port)
    except socket.gaierror as exc:
        return failed(f"P419_API_HOST={host} does not resolve ({exc})", "set P419_API_HOST=127.0.0.1")
    if error is None:
        return passed(f"{host}:{port} is free: the API can listen there")
    if not in_use(error):
        return bind_error_outcome(host, port, error)
    url = health_url(host, port)
    health = our_health(url)
    if health is not None:
        return passed(f"our API answers {url} (status {health.get('status', '?')})")
    return held_outcome(host, port, port_owner(port), ctx.platform)

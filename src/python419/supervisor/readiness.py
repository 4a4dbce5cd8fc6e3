"""Is a child ready? Short, cheap probes: Redis PING, the API's quick health, the worker's own ready file."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from python419.broker import redis_answers
from python419.supervisor.plan import ChildSpec, Plan, http_url

PROBE_TIMEOUT = 0.25


def probe_url(api_url: str) -> str:
    """A server bound to every interface is probed on loopback."""
    parts = urlsplit(api_url)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return http_url(host, parts.port or 80)


class Probe:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._health = f"{probe_url(plan.api_url)}/health?workers=false"

    def __call__(self, spec: ChildSpec) -> bool:
        if spec.kind == "redis":
            return redis_answers(self.plan.env["REDIS_URL"], PROBE_TIMEOUT)
        if spec.kind == "api":
            try:
                return httpx.get(self._health, timeout=PROBE_TIMEOUT).status_code == 200
            except httpx.HTTPError:
                return False
        return spec.ready_file is not None and spec.ready_file.exists()

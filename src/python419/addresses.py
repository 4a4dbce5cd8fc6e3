"""Network addresses: one answer to "is this host loopback", URL building and URL redaction."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and localhost: the addresses only this machine can reach."""
    if not host:
        return False
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_wildcard_host(host: str | None) -> bool:
    """0.0.0.0 / :: : bound to every interface (reachable from the network)."""
    try:
        return host is not None and ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def url_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def is_local_url(url: str) -> bool:
    """A broker URL this machine serves (a unix socket, or a loopback host)."""
    return url.startswith("unix:") or is_loopback_host(url_host(url))


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def probe_host(host: str) -> str:
    """A server bound to every interface is reached on loopback."""
    return "127.0.0.1" if not host or is_wildcard_host(host) else host


def safe_url(url: str) -> str:
    """A URL fit for messages: the password masked (kombu's sanitizer). Never raises, even when malformed."""
    if "@" not in url and "?" not in url:
        # Nothing to mask (kombu drops a query: it may hold a password), and no kombu import, which cost 20-45 ms
        # of `p419 up` before its first child.
        return url
    from kombu.utils.url import maybe_sanitize_url  # kombu's package costs ~0.1 s to import: only when asked

    try:
        return str(maybe_sanitize_url(url))
    except ValueError:
        return re.sub(r"://[^@/]*@", "://***@", url)


def with_parts(url: str, *, host: str | None = None, password: str | None = None) -> str:
    """The same URL pointed at another host (its port kept) and/or with another password (percent-encoded,
    no user name); scheme, path and the rest unchanged."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if password is not None:
        userinfo, at = f":{quote(password, safe='')}", "@"
    if host is not None:
        hostport = host + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=f"{userinfo}{at}{hostport}").geturl()

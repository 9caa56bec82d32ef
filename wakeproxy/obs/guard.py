"""The admin listener's defences against web pages and DNS rebinding.

A page open in an operator's browser can send requests to 127.0.0.1 or to a cluster
address: a form or `text/plain` POST needs no CORS preflight, and a DNS name the
attacker controls can be rebound to the admin address (the browser then sends that
name as Host). So every admin request must name the admin server itself as its Host
(an IP literal, `localhost`, or a name listed in `admin_hosts`: no page can be served
from those), carry no foreign `Origin` (nor `Sec-Fetch-Site: cross-site`/`same-site`),
and every write must be `Content-Type: application/json`, which no page can send to
another origin without a preflight this server never answers.

`open_paths` (the GitHub webhook) skip these checks: GitHub sends its own Host and is
authenticated by its signature, which no page can forge. Must never: let a request
through on a missing check because a header is malformed (malformed is refused).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from wakeproxy.obs.api_errors import Forbidden, UnsupportedMediaType

_WRITES = frozenset({"POST", "PUT", "PATCH"})
_SAME_SITE = frozenset({"same-origin", "none"})


def split_host(value: str) -> str | None:
    """The host of a Host header or an origin's authority, lowercased; None if malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@ \t\\"):
        return None
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[1:end], value[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        return host
    host, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return host.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """An IP literal (no page can be served under another's address), a localhost name,
    or a configured admin name."""
    return (_is_ip(host) or host == "localhost" or host.endswith(".localhost")
            or host in names)


def guard_middleware(admin_hosts: Iterable[str], open_paths: frozenset[str]) -> Middleware:
    names = frozenset(h.lower().rstrip(".") for h in admin_hosts)

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in open_paths:
            return await handler(request)
        raw_host = request.headers.get("Host")
        host = split_host(raw_host) if raw_host is not None else None
        if raw_host is not None and (host is None or not host_allowed(host, names)):
            raise Forbidden(
                f"the admin API answers only to its own address, not Host {raw_host[:100]!r} "
                "(list the names it is reached by in admin_hosts)")
        origin = request.headers.get("Origin")
        if origin is not None:
            parts = urlsplit(origin.strip())
            same = (parts.scheme in ("http", "https") and raw_host is not None
                    and parts.netloc.lower() == raw_host.strip().lower())
            if not same:
                raise Forbidden(f"cross-origin requests are refused (Origin {origin[:100]!r})")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() not in _SAME_SITE:
            raise Forbidden(f"cross-site requests are refused (Sec-Fetch-Site {site[:40]!r})")
        return await handler(request)

    return middleware


def require_json(request: web.Request) -> None:
    """Refuse a write whose body is not declared JSON (a form or text/plain POST, or one
    with no type, is what a page can send without a preflight). Raises
    UnsupportedMediaType."""
    if request.method not in _WRITES and not (request.method == "DELETE"
                                              and request.body_exists):
        return
    if request.content_type != "application/json":
        given = request.headers.get("Content-Type", "none")
        raise UnsupportedMediaType(
            f"admin writes must be Content-Type: application/json (got {given[:80]!r})")

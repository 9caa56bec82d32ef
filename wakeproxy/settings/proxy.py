"""The proxy's own top-level keys: listen addresses, admin token, log, trusted proxies, limits.

Reads the admin token file when one is named (relative to the config file) and nothing
else; never puts the token into an error.
"""

from __future__ import annotations

import ipaddress
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wakeproxy.model.limits import Limits
from wakeproxy.settings.reader import Reader
from wakeproxy.settings.values import (
    POSITIVE_DURATION,
    boolean,
    host_pattern,
    nonblank,
    positive_duration,
    positive_int,
    str_list,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def same_socket(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether two listen addresses would collide on bind (port 0 never does)."""
    (host_a, port_a), (host_b, port_b) = a, b
    if port_a != port_b or port_a == 0:
        return False
    if host_a == host_b or "::" in (host_a, host_b):
        return True
    v4 = ":" not in host_a and ":" not in host_b
    return v4 and "0.0.0.0" in (host_a, host_b)


def loopback_only(host: str) -> bool:
    """Whether a listen host takes connections from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_names(v: object) -> tuple[str, ...]:
    names = tuple(host_pattern(h) for h in str_list(v))
    if any(n.startswith("*.") for n in names):
        raise ValueError(v)
    return names


def read_admin_hosts(r: Reader, top: Mapping[str, Any]) -> tuple[str, ...]:
    """`admin_hosts`: the names (besides IP literals and localhost) the admin API answers
    to, e.g. its Service's DNS names on Kubernetes."""
    return r.get(top, "admin_hosts", "", _host_names,
                 "a list of host names like wakeproxy-admin.wakeproxy.svc", ())


def require_token(r: Reader, admin: tuple[str, int], token: str | None,
                  top: Mapping[str, Any]) -> None:
    """An admin listener other machines can reach must have a token: without one, any
    of them (any pod in a cluster) could build, deploy and delete."""
    if token is not None or loopback_only(admin[0]):
        return
    if "admin_token" in top or "admin_token_file" in top:
        return  # that key's own problem is reported already
    where = top.get("admin_listen")
    r.fail("admin_token_file",
           f"a token (admin_token_file or admin_token) because admin_listen {where} is "
           "reachable from other hosts; or an admin_listen on 127.0.0.1")


def read_run_as(r: Reader, top: Mapping[str, Any]) -> str | None:
    """`run_as`: the user builds and local apps run as when wakeproxy runs as root."""
    def user(v: object) -> str:
        name = nonblank(v)
        try:
            pwd.getpwnam(name)
        except KeyError:
            raise ValueError(v) from None
        return name

    return r.get(top, "run_as", "", user, "a user of this host like wakeproxy-apps", None)


def read_token(r: Reader, top: Mapping[str, Any], base_dir: Path) -> str | None:
    token = top.get("admin_token")
    token_file = top.get("admin_token_file")
    if token is not None and token_file is not None:
        r.fail("admin_token_file", "either admin_token or admin_token_file, not both")
        return None
    if token is not None:
        if not isinstance(token, str) or len(token) < 16:
            r.fail("admin_token", "a string of at least 16 characters", "<hidden>")
            return None
        return token
    if token_file is not None:
        if not isinstance(token_file, str):
            r.fail("admin_token_file", "a file path", token_file)
            return None
        path = base_dir / token_file
        try:
            text = path.read_text().strip()
        except OSError as e:
            r.fail("admin_token_file", "a readable file", f"{path}: {e.strerror}")
            return None
        if len(text) < 16:
            expected = "a file holding a token of at least 16 characters"
            r.fail("admin_token_file", expected, str(path))
            return None
        return text
    return None


def read_log(r: Reader, raw: object) -> tuple[str, str, bool]:
    """The `log:` section → (format, level, whether each request gets an access line)."""
    log = r.mapping(raw, "log")
    r.unknown_keys(log, {"format", "level", "access"}, "log")
    log_format = log.get("format", "json")
    if log_format not in ("json", "console"):
        r.fail("log.format", "json or console", log_format)
        log_format = "json"
    log_level = str(log.get("level", "info")).lower()
    if log_level not in ("debug", "info", "warning", "error"):
        r.fail("log.level", "one of: debug, info, warning, error", log.get("level"))
        log_level = "info"
    access = r.get(log, "access", "log.", boolean, "true or false", True)
    return log_format, log_level, access


def read_networks(r: Reader, raw: object) -> tuple[Network, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail("trusted_proxies", "a list of addresses or CIDR ranges", raw)
        return ()
    nets = []
    for i, item in enumerate(raw):
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            r.fail(f"trusted_proxies[{i}]", "an address or CIDR range like 10.0.0.0/8", item)
    return tuple(nets)


def read_limits(r: Reader, raw: object) -> Limits:
    m = r.mapping(raw, "limits")
    d = Limits()
    r.unknown_keys(m, set(Limits.__dataclass_fields__), "limits")
    ints = ("max_head_bytes", "max_headers", "max_connections", "upstream_pool_size")
    kw: dict[str, Any] = {}
    for name in Limits.__dataclass_fields__:
        default = getattr(d, name)
        if name in ints:
            kw[name] = r.get(m, name, "limits.", positive_int, "a whole number above 0", default)
        else:
            kw[name] = r.get(m, name, "limits.", positive_duration, POSITIVE_DURATION, default)
    return Limits(**kw)

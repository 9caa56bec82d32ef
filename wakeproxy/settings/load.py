"""Config text or file → Settings: parses the YAML and hands each section to its reader.

Owns Settings, the set of top-level keys and the order problems are found in. Reads the
one config file `load_settings` is given (the section readers read only the files it
names); never reads environment variables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.limits import Limits
from wakeproxy.settings.apps import LocalApp, read_apps, read_defaults
from wakeproxy.settings.build_limits import BuildLimits, read_build_limits
from wakeproxy.settings.kubernetes import KubernetesSettings, read_kubernetes
from wakeproxy.settings.proxy import (
    Network,
    read_admin_hosts,
    read_limits,
    read_log,
    read_networks,
    read_run_as,
    read_token,
    require_token,
    same_socket,
)
from wakeproxy.settings.reader import ConfigError, Reader
from wakeproxy.settings.review import ReviewApps, read_review_apps
from wakeproxy.settings.savings import Savings, read_savings
from wakeproxy.settings.values import (
    DURATION,
    POSITIVE_DURATION,
    nonblank,
    parse_address,
    parse_duration,
    positive_duration,
)


@dataclass(frozen=True, slots=True)
class Settings:
    source: str
    cluster: str
    platform: str
    listen: tuple[str, int]
    admin_listen: tuple[str, int]
    admin_token: str | None
    log_format: str
    log_level: str
    trusted_proxies: tuple[Network, ...]
    sweep_interval: float
    drain_grace: float
    limits: Limits
    apps: tuple[LocalApp, ...]
    savings: Savings = Savings()  # noqa: RUF009 - frozen, one shared default is safe
    # One JSON line per request (at info level); off saves ~3 µs of CPU per request.
    log_access: bool = True
    kubernetes: KubernetesSettings | None = None
    # The `defaults:` section as a policy (name and hosts empty): what a platform that
    # discovers apps starts from before an app's own overrides.
    defaults: AppPolicy = field(default_factory=lambda: AppPolicy(name="-", hosts=()))
    review_apps: ReviewApps | None = None
    # Where builds fetch their release directories (an absolute path).
    builds_dir: str = ".wakeproxy/builds"
    # Names besides IP literals and localhost the admin API answers to (its Host).
    admin_hosts: tuple[str, ...] = ()
    # A listener of its own serving only the GitHub webhook; None: none.
    webhook_listen: tuple[str, int] | None = None
    # The user builds and local apps run as (wakeproxy running as root); None: its own.
    run_as: str | None = None
    build_limits: BuildLimits = BuildLimits()  # noqa: RUF009 - frozen, one shared default

    @property
    def policies(self) -> tuple[AppPolicy, ...]:
        return tuple(a.policy for a in self.apps)


_TOP_KEYS = {
    "cluster", "platform", "listen", "admin_listen", "admin_token", "admin_token_file",
    "log", "trusted_proxies", "sweep_interval", "drain_grace", "limits", "defaults",
    "apps", "kubernetes", "review_apps", "savings", "builds_dir", "admin_hosts",
    "webhook_listen", "run_as", "build_limits",
}
_PLATFORMS = ("local", "kubernetes")


def _as_json(doc: object) -> str | None:
    """`doc` as JSON text when JSON carries it exactly (plain data, string keys), else None."""

    def plain(v: object) -> bool:
        if isinstance(v, dict):
            return all(type(k) is str and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or type(v) in (str, int, float, bool)

    try:
        return json.dumps(doc) if plain(doc) else None
    except RecursionError:  # absurdly deep nesting: keep the document as parsed
        return None


def _read_document(text: str, source: str) -> dict[str, Any]:
    """The YAML text as a mapping; anything else is a ConfigError at once."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(e, "problem", None) or e
        raise ConfigError([f"{source}: {where}: expected valid YAML ({problem})"]) from None
    plain = _as_json(doc)
    if plain is not None:
        # PyYAML's node graph (~60 MB for 10,000 apps) is gone now, but the document
        # built alongside it is scattered through that memory and would keep most of it
        # resident for the life of the process; rebuilt from JSON it is compact.
        doc = None
        doc = json.loads(plain)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(
            [f"{source}: (top level): expected a mapping of keys to values, got {doc!r}"])
    return doc


def parse_settings(text: str, source: str, base_dir: Path | None = None) -> Settings:
    """Parse config text; `source` names the file in every error. Raises ConfigError."""
    r = Reader(source)
    top = _read_document(text, source)
    base_dir = base_dir or Path(".")
    r.unknown_keys(top, _TOP_KEYS, "")

    cluster = r.get(top, "cluster", "", nonblank, "a cluster name", "default")
    platform = top.get("platform", "local")
    if platform not in _PLATFORMS:
        r.fail("platform", "one of: " + ", ".join(_PLATFORMS), platform)
        platform = "local"
    listen = r.get(
        top, "listen", "", parse_address, "an address like 127.0.0.1:8080", ("127.0.0.1", 8080))
    admin = r.get(
        top, "admin_listen", "", parse_address, "an address like 127.0.0.1:9090",
        ("127.0.0.1", 9090))
    if same_socket(listen, admin):
        given = top.get("admin_listen") or f"{admin[0]}:{admin[1]} (the default)"
        r.fail("admin_listen", "an address other than listen's", given)
    token = read_token(r, top, base_dir)
    require_token(r, admin, token, top)
    run_as = read_run_as(r, top)
    build_limits = read_build_limits(r, top.get("build_limits"))
    admin_hosts = read_admin_hosts(r, top)
    webhook = r.get(top, "webhook_listen", "", parse_address,
                    "an address like 0.0.0.0:9091", None)
    for key, other in (("listen", listen), ("admin_listen", admin)):
        if webhook is not None and same_socket(webhook, other):
            r.fail("webhook_listen", f"an address other than {key}'s", top.get("webhook_listen"))
    log_format, log_level, log_access = read_log(r, top.get("log"))
    trusted = read_networks(r, top.get("trusted_proxies"))
    sweep_interval = r.get(top, "sweep_interval", "", positive_duration, POSITIVE_DURATION, 1.0)
    drain_grace = r.get(top, "drain_grace", "", parse_duration, DURATION, 30.0)
    limits = read_limits(r, top.get("limits"))
    savings = read_savings(r, top.get("savings"))
    kubernetes = read_kubernetes(r, top.get("kubernetes"), platform, base_dir)
    base = read_defaults(r, top.get("defaults"))
    apps = read_apps(r, top.get("apps"), base, platform, base_dir)
    review_apps = read_review_apps(r, top.get("review_apps"), base_dir)
    builds_dir = r.get(top, "builds_dir", "", nonblank, "a directory path", ".wakeproxy/builds")
    builds_dir = str((base_dir / builds_dir).resolve())

    if r.problems:
        raise ConfigError(r.problems)
    return Settings(
        source=source, cluster=cluster, platform=platform, listen=listen, admin_listen=admin,
        admin_token=token, log_format=log_format, log_level=log_level, trusted_proxies=trusted,
        log_access=log_access,
        sweep_interval=sweep_interval, drain_grace=drain_grace, limits=limits, apps=apps,
        savings=savings, kubernetes=kubernetes, review_apps=review_apps, builds_dir=builds_dir,
        admin_hosts=admin_hosts, webhook_listen=webhook, run_as=run_as,
        build_limits=build_limits,
        defaults=AppPolicy(name="-", hosts=(),
                           **{k: v for k, v in base.items() if k != "stop_grace"}),
    )


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Read and parse one config file. Raises ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{p}: expected a readable config file ({e.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{p}: expected UTF-8 text"]) from None
    return parse_settings(text, str(p), base_dir=p.parent)

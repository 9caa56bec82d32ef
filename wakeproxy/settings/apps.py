"""The `defaults:` and `apps:` sections → policies and LocalApps.

Owns LocalApp, which policy keys exist, and the rule that each app name and each host is
used once. Never reads files: a relative `repo` path is only resolved against the
config file's directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.routes import normalize_pattern
from wakeproxy.settings.reader import Reader
from wakeproxy.settings.schedule import EXPECTED as SCHEDULE
from wakeproxy.settings.schedule import awake_schedule
from wakeproxy.settings.values import (
    DNS_LABEL,
    DURATION,
    IDLE_AFTER,
    POSITIVE_DURATION,
    boolean,
    dns_label,
    host_pattern,
    idle_after,
    nonblank,
    parse_duration,
    positive_duration,
    positive_int,
    str_list,
)


@dataclass(frozen=True, slots=True)
class LocalApp:
    """How the local platform runs an app: `command` with `/bin/sh -c`, `PORT` in env."""

    policy: AppPolicy
    command: str
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    stop_grace: float = 10.0
    # Built from source: `repo` is fetched into a release directory where `build` runs and
    # `command` then runs (cwd is the release). None: `command` runs as configured.
    repo: str | None = None
    # `owner/name` of the GitHub repository whose pull requests get review apps of this app.
    github_repo: str | None = None
    build: str | None = None
    # What the app's review apps (and their builds) get instead of `env`: code from a pull
    # request must not see the base app's secrets unless the config says so.
    review_env: Mapping[str, str] = field(default_factory=dict)


POLICY_KEYS = {
    "idle_after", "wake_timeout", "max_held_requests", "waiting_page", "waiting_page_after",
    "release_concurrency", "ignored_paths", "probe_interval", "readiness_path", "stop_grace",
    "promote_to", "give_up_after", "awake_schedule",
}
APP_KEYS = POLICY_KEYS | {
    "name", "hosts", "command", "cwd", "env", "repo", "github_repo", "build", "review_env",
}
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def _path_list(v: object) -> tuple[str, ...]:
    paths = str_list(v)
    if not all(p.startswith("/") for p in paths):
        raise ValueError(v)
    return paths


def _readiness_path(v: object) -> str:
    s = nonblank(v)
    if not s.startswith("/"):
        raise ValueError(v)
    return s


_POLICY_FIELDS: tuple[tuple[str, Callable[[object], Any], str], ...] = (
    ("idle_after", idle_after, IDLE_AFTER),
    ("wake_timeout", positive_duration, POSITIVE_DURATION),
    ("max_held_requests", positive_int, "a whole number above 0"),
    ("waiting_page", boolean, "true or false"),
    ("waiting_page_after", parse_duration, DURATION),
    ("release_concurrency", positive_int, "a whole number above 0"),
    ("ignored_paths", _path_list, "a list of paths starting with /"),
    ("probe_interval", positive_duration, "a duration above zero like 5ms"),
    ("readiness_path", _readiness_path, "a path starting with /"),
    ("stop_grace", parse_duration, DURATION),
    ("promote_to", dns_label, "the name of the app that is its next stage"),
    ("give_up_after", positive_duration, POSITIVE_DURATION),
    ("awake_schedule", awake_schedule, SCHEDULE),
)
# Each per-app key's converter and what it expects: the one reading of a per-app setting,
# for the config file and for platforms that take the same settings from elsewhere.
POLICY_FIELDS: Mapping[str, tuple[Callable[[object], Any], str]] = {
    key: (conv, expected) for key, conv, expected in _POLICY_FIELDS}


def _policy_fields(
    r: Reader, m: Mapping[str, Any], path: str, base: dict[str, Any],
) -> dict[str, Any]:
    out = dict(base)
    for key, conv, expected in _POLICY_FIELDS:
        out[key] = r.get(m, key, path, conv, expected, base[key])
    return out


def read_defaults(r: Reader, raw: object) -> dict[str, Any]:
    """The `defaults:` section as policy fields (plus `stop_grace`) every app starts from."""
    d = AppPolicy(name="-", hosts=())
    base: dict[str, Any] = {
        "idle_after": d.idle_after, "wake_timeout": d.wake_timeout,
        "max_held_requests": d.max_held_requests, "waiting_page": d.waiting_page,
        "waiting_page_after": d.waiting_page_after,
        "release_concurrency": d.release_concurrency, "ignored_paths": d.ignored_paths,
        "probe_interval": d.probe_interval, "readiness_path": d.readiness_path,
        "stop_grace": 10.0, "promote_to": None, "give_up_after": d.give_up_after,
        "awake_schedule": None,
    }
    defaults = r.mapping(raw, "defaults")
    r.unknown_keys(defaults, POLICY_KEYS, "defaults")
    if defaults.get("promote_to") is not None:
        r.fail("defaults.promote_to", "to be set per app (each app has its own next stage)")
        defaults = {k: v for k, v in defaults.items() if k != "promote_to"}
    return _policy_fields(r, defaults, "defaults.", base)


def _repo(base_dir: Path) -> Callable[[object], str]:
    def conv(v: object) -> str:
        url = nonblank(v).strip()
        # A URL (scheme:// or scp-like user@host:path) is used as is; a bare path is
        # relative to the config file, like every other path in it.
        if "://" in url or ":" in url or url.startswith("/"):
            return url
        return str((base_dir / url).resolve())

    return conv


def _github_repo(v: object) -> str:
    if not isinstance(v, str) or not _GITHUB_REPO.match(v):
        raise ValueError(v)
    return v


def _read_source(
    r: Reader, m: Mapping[str, Any], path: str, base_dir: Path,
) -> tuple[str | None, str | None, str | None]:
    """An app's `repo`, `github_repo` and `build` (all None for an app not built here)."""
    p = f"{path}."
    repo = r.get(m, "repo", p, _repo(base_dir), "a git URL or repository path", None)
    github = r.get(m, "github_repo", p, _github_repo, "a GitHub repository like acme/shop", None)
    build = r.get(m, "build", p, nonblank, "a shell command run in the checkout", None)
    if repo is None:
        for key, value in (("github_repo", github), ("build", build)):
            if value is not None:
                r.fail(f"{path}.{key}", "to be set only with repo (the git URL it builds from)")
    elif m.get("cwd") is not None:
        r.fail(f"{path}.cwd", "no cwd with repo (commands run in the release checkout)")
    return repo, github, build


@dataclass(frozen=True, slots=True)
class _Claim:
    """What apps[i] claims — its name and hosts, as far as they are valid — whether or not
    its other keys are: a duplicate is reported beside every other problem."""

    index: int
    name: str | None
    hosts: tuple[tuple[int, str], ...]  # (position in hosts:, pattern)


def _read_app(
    r: Reader, raw: object, i: int, base: dict[str, Any], platform: str, base_dir: Path,
    claims: list[_Claim],
) -> LocalApp | None:
    path = f"apps[{i}]"
    if raw is None or raw == {}:
        r.fail(path, "an app with at least name and hosts", raw)
        return None
    m = r.mapping(raw, path)
    if not m:
        return None
    r.unknown_keys(m, APP_KEYS, path)
    name = m.get("name")
    ok = True
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        r.fail(f"{path}.name", "a lowercase name of letters, digits and '-' (at most 63)", name)
        ok = False
    valid_name = name if ok else None
    hosts_raw = m.get("hosts")
    hosts: list[str] = []
    claimed: list[tuple[int, str]] = []
    if not isinstance(hosts_raw, list) or not hosts_raw:
        r.fail(f"{path}.hosts", "a non-empty list of host names or *.domain wildcards", hosts_raw)
        ok = False
    else:
        for j, h in enumerate(hosts_raw):
            try:
                if not isinstance(h, str):
                    raise ValueError(h)
                hosts.append(host_pattern(h))
                claimed.append((j, hosts[-1]))
            except ValueError:
                r.fail(f"{path}.hosts[{j}]", "a host name like app.example.com or *.example.com", h)
                ok = False
    claims.append(_Claim(i, valid_name, tuple(claimed)))
    command = m.get("command")
    if platform == "local" and (not isinstance(command, str) or not command.strip()):
        r.fail(f"{path}.command", "a shell command that listens on $PORT", command)
        ok = False
    cwd = m.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        r.fail(f"{path}.cwd", "a directory path", cwd)
        ok = False
    elif cwd is not None:
        # Relative to the config file, like every other path in it: the same config
        # works whichever directory wakeproxy is started from.
        cwd = str((base_dir / cwd).resolve())
    env, env_ok = _read_env(r, m, f"{path}.env")
    review_env, review_ok = _read_env(r, m, f"{path}.review_env")
    ok = ok and env_ok and review_ok
    fields = _policy_fields(r, m, f"{path}.", base)
    repo, github_repo, build = _read_source(r, m, path, base_dir)
    if not ok:
        return None
    stop_grace = fields.pop("stop_grace")
    policy = AppPolicy(name=str(name), hosts=tuple(hosts), **fields)
    return LocalApp(
        policy=policy, command=str(command or ""), cwd=cwd, env=env, stop_grace=stop_grace,
        repo=repo, github_repo=github_repo, build=build, review_env=review_env,
    )


def _read_env(r: Reader, m: Mapping[str, Any], path: str) -> tuple[dict[str, str], bool]:
    env: dict[str, str] = {}
    ok = True
    for k, v in r.mapping(m.get(path.rsplit(".", 1)[1]), path).items():
        if not isinstance(k, str) or isinstance(v, dict | list) or v is None:
            r.fail(f"{path}.{k}", "a string value", v)
            ok = False
        else:
            env[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return env, ok


def _check_unique(r: Reader, claims: list[_Claim]) -> None:
    """Each name used once, each host or wildcard claimed by one app (as RouteTable needs).

    Errors point at the right `apps[i]`, and apps with other problems take part: every
    problem of a file is reported in one go.
    """
    names: dict[str, int] = {}
    owners: dict[str, tuple[int, str]] = {}
    for claim in claims:
        i, name = claim.index, claim.name
        if name is not None and name in names:
            r.fail(f"apps[{i}].name", f"a name not already used by apps[{names[name]}]", name)
        elif name is not None:
            names[name] = i
        for j, host in claim.hosts:
            key = normalize_pattern(host)
            owner = owners.get(key)
            if owner is None:
                owners[key] = (i, name or f"apps[{i}]")
            elif owner[0] != i:
                r.fail(
                    f"apps[{i}].hosts[{j}]",
                    f"a host not already claimed by apps[{owner[0]}] ({owner[1]})", host,
                )


def read_apps(
    r: Reader, raw: object, base: dict[str, Any], platform: str, base_dir: Path,
) -> tuple[LocalApp, ...]:
    """The `apps:` list; `base` is what `read_defaults` gave."""
    apps: list[LocalApp] = []
    claims: list[_Claim] = []
    if raw is not None and not isinstance(raw, list):
        r.fail("apps", "a list of apps", raw)
    elif raw:
        for i, item in enumerate(raw):
            app = _read_app(r, item, i, base, platform, base_dir, claims)
            if app is not None:
                apps.append(app)
    _check_unique(r, claims)
    _check_stages(r, apps, raw if isinstance(raw, list) else [])
    return tuple(apps)


def _check_stages(r: Reader, apps: list[LocalApp], raw: list[Any]) -> None:
    """Each `promote_to` names another app of the file built from source (a `repo`): the
    stage a promote deploys the release to. Only such apps have releases."""
    built = {a.policy.name for a in apps if a.repo is not None}
    for i, item in enumerate(raw):
        target = item.get("promote_to") if isinstance(item, dict) else None
        if not isinstance(target, str) or not DNS_LABEL.match(target):
            continue  # absent, or already reported by its converter
        if item.get("repo") is None:
            r.fail(f"apps[{i}].promote_to", "to be set only with repo (only builds are "
                   "promoted)")
        elif target not in built or target == item.get("name"):
            r.fail(f"apps[{i}].promote_to",
                   "the name of another app of this file built from source (with repo)",
                   target)

"""The `review_apps:` section → ReviewApps: the domain of pull-request apps, the webhook
secret, whose pull requests are built (forks) and how many review apps a repository gets.

Owns ReviewApps. Reads the one secret file the section names (relative to the config
file) and nothing else; never keeps the secret in a repr or an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wakeproxy.settings.reader import Reader
from wakeproxy.settings.values import boolean, host_pattern, nonblank, positive_int, str_list

_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


FORKS = ("never", "label", "always")
ASSOCIATIONS = ("OWNER", "MEMBER", "COLLABORATOR", "CONTRIBUTOR", "FIRST_TIMER",
                "FIRST_TIME_CONTRIBUTOR", "MANNEQUIN", "NONE")


@dataclass(frozen=True, slots=True)
class ReviewApps:
    """Review apps of pull requests: app `pr-<n>-<app>` at host `pr-<n>-<app>.<domain>`."""

    domain: str
    webhook_secret: bytes = field(repr=False)
    # Pull requests whose head is another repository (a fork): never built, built when a
    # maintainer adds `fork_label` (that commit only), or always.
    forks: str = "never"
    fork_label: str = "safe-to-build"
    # Authors whose pull requests are built from forks too: GitHub logins, and the
    # `author_association`s GitHub gives people with a role in the repository.
    trusted_authors: tuple[str, ...] = ()
    trusted_associations: tuple[str, ...] = ("OWNER", "MEMBER", "COLLABORATOR")
    max_per_repo: int = 10  # open review apps of one repository; a new one beyond: 429


def read_review_apps(r: Reader, raw: object, base_dir: Path) -> ReviewApps | None:
    if raw is None:
        return None
    m = r.mapping(raw, "review_apps")
    r.unknown_keys(m, {"enabled", "domain", "webhook_secret_file", "forks", "fork_label",
                       "trusted_authors", "trusted_associations", "max_per_repo"},
                   "review_apps")
    if not r.get(m, "enabled", "review_apps.", boolean, "true or false", True):
        return None
    domain = r.get(m, "domain", "review_apps.", lambda v: host_pattern(nonblank(v)),
                   "a domain like review.example.com", None)
    if domain is None or domain.startswith("*."):
        r.fail("review_apps.domain", "a domain like review.example.com", m.get("domain"))
        domain = None
    secret_file = m.get("webhook_secret_file")
    if not isinstance(secret_file, str) or not secret_file:
        r.fail("review_apps.webhook_secret_file", "a file holding the GitHub webhook secret",
               secret_file)
        return None
    path = base_dir / secret_file
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        r.fail("review_apps.webhook_secret_file", "a readable file", f"{path}: {e.strerror}")
        return None
    if not secret:
        r.fail("review_apps.webhook_secret_file", "a file holding a non-empty secret", str(path))
        return None
    d = ReviewApps(domain="-", webhook_secret=b"")
    p = "review_apps."
    forks = r.get(m, "forks", p, _one_of(FORKS), "one of: " + ", ".join(FORKS), d.forks)
    label = r.get(m, "fork_label", p, nonblank, "a label name like safe-to-build",
                  d.fork_label)
    authors = r.get(m, "trusted_authors", p, _logins, "a list of GitHub logins",
                    d.trusted_authors)
    associations = r.get(m, "trusted_associations", p, _associations,
                         "a list of: " + ", ".join(ASSOCIATIONS), d.trusted_associations)
    cap = r.get(m, "max_per_repo", p, positive_int, "a whole number above 0", d.max_per_repo)
    if domain is None:
        return None
    return ReviewApps(domain=domain, webhook_secret=secret, forks=forks, fork_label=label,
                      trusted_authors=authors, trusted_associations=associations,
                      max_per_repo=cap)


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def conv(v: object) -> str:
        if v not in choices:
            raise ValueError(v)
        return str(v)

    return conv


def _logins(v: object) -> tuple[str, ...]:
    names = str_list(v) if v != [] else ()
    if not all(_LOGIN.fullmatch(n) for n in names):
        raise ValueError(v)
    return tuple(n.lower() for n in names)


def _associations(v: object) -> tuple[str, ...]:
    names = tuple(n.upper() for n in str_list(v)) if v != [] else ()
    if not all(n in ASSOCIATIONS for n in names):
        raise ValueError(v)
    return names

"""The `review_apps:` section → ReviewApps: the domain of pull-request apps and the webhook secret.

Owns ReviewApps. Reads the one secret file the section names (relative to the config
file) and nothing else; never keeps the secret in a repr or an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wakeproxy.settings.reader import Reader
from wakeproxy.settings.values import boolean, host_pattern, nonblank


@dataclass(frozen=True, slots=True)
class ReviewApps:
    """Review apps of pull requests: app `pr-<n>-<app>` at host `pr-<n>-<app>.<domain>`."""

    domain: str
    webhook_secret: bytes = field(repr=False)


def read_review_apps(r: Reader, raw: object, base_dir: Path) -> ReviewApps | None:
    if raw is None:
        return None
    m = r.mapping(raw, "review_apps")
    r.unknown_keys(m, {"enabled", "domain", "webhook_secret_file"}, "review_apps")
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
    if domain is None:
        return None
    return ReviewApps(domain=domain, webhook_secret=secret)

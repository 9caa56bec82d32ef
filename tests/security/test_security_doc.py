"""SECURITY.md says what the code does: its tables of review_apps keys and caps carry the
defaults the config readers use, and its list of inherited variables is the sandbox's."""

from __future__ import annotations

import re
from pathlib import Path

from wakeproxy.platforms.local.sandbox import BASICS
from wakeproxy.settings import BuildLimits, ReviewApps

DOC = (Path(__file__).resolve().parents[2] / "SECURITY.md").read_text()


def rows() -> dict[str, str]:
    """`key` → its default column, from every table whose first column is a key."""
    return {m.group(1): m.group(2).strip() for m in re.finditer(
        r"^ *\| `([a-z_.]+)` \| ([^|]+) \|", DOC, re.MULTILINE)}


def test_the_review_apps_keys_and_their_defaults() -> None:
    d = ReviewApps(domain="-", webhook_secret=b"")
    table = rows()
    assert table["forks"] == f"`{d.forks}`"
    assert table["fork_label"] == f"`{d.fork_label}`"
    assert table["trusted_authors"] == "`[]`" and d.trusted_authors == ()
    assert table["trusted_associations"] == f"`[{', '.join(d.trusted_associations)}]`"


def test_the_caps_and_their_defaults() -> None:
    b, table = BuildLimits(), rows()
    assert table["review_apps.max_per_repo"] == str(
        ReviewApps(domain="-", webhook_secret=b"").max_per_repo)
    assert table["build_limits.max_queued"] == str(b.max_queued)
    assert table["build_limits.concurrency"] == (
        f"{b.running('local')} local, {b.running('kubernetes')} Kubernetes")
    assert table["build_limits.log_bytes"] == f"{b.log_bytes // 2**20} MiB"
    assert table["build_limits.log_bytes_total"] == f"{b.log_bytes_total // 2**20} MiB"


def test_the_inherited_variables_are_the_sandboxs() -> None:
    section = DOC[DOC.index("## What builds and apps can see"):DOC.index("from wakeproxy's")]
    listed = set(re.findall(r"`([A-Z_*]+)`", section))
    expected = {v for v in BASICS if not v.startswith("LC_")} | {"LC_*"}
    assert listed == expected

"""The `build_limits:` section → BuildLimits: how many builds run and wait, and how much of
their logs is kept in memory, on either platform.

Owns BuildLimits and its defaults. Reads no file.
"""

from __future__ import annotations

from dataclasses import dataclass

from wakeproxy.settings.reader import Reader
from wakeproxy.settings.values import positive_int

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BuildLimits:
    # Builds running at once (local processes, or Kubernetes Jobs each holding an API log
    # stream); None: 2 on the local platform, 4 on Kubernetes. The rest wait, queued.
    concurrency: int | None = None
    max_queued: int = 20  # builds waiting for a slot; one more is refused (429)
    log_bytes: int = 1 * MIB  # of one build's log kept in memory (its oldest output goes)
    # Of all builds' logs kept in memory; beyond it the oldest finished logs are dropped
    # from memory (read back from disk, or from the build pod, when asked for).
    log_bytes_total: int = 64 * MIB

    def running(self, platform: str) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return 4 if platform == "kubernetes" else 2


def read_build_limits(r: Reader, raw: object) -> BuildLimits:
    m = r.mapping(raw, "build_limits")
    d = BuildLimits()
    r.unknown_keys(m, set(BuildLimits.__dataclass_fields__), "build_limits")
    p, whole = "build_limits.", "a whole number above 0"
    return BuildLimits(
        concurrency=r.get(m, "concurrency", p, positive_int, whole, d.concurrency),
        max_queued=r.get(m, "max_queued", p, positive_int, whole, d.max_queued),
        log_bytes=r.get(m, "log_bytes", p, positive_int, "a number of bytes above 0",
                        d.log_bytes),
        log_bytes_total=r.get(m, "log_bytes_total", p, positive_int,
                              "a number of bytes above 0", d.log_bytes_total),
    )

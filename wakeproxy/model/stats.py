"""Counters kept as plain integers on the hot path; exported at scrape time.

Each object has one writer: RequestStats the data plane, WakeStats the control plane,
PlatformStats the platform. The metrics exporter reads a consistent-enough snapshot when
Prometheus scrapes; nothing here costs more than a dict update per event.
"""

from __future__ import annotations

import bisect

# Proxying latencies: 100 µs … 10 s.
REQUEST_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Wakes and holds: 10 ms … 120 s.
WAKE_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0,
)


class Histogram:
    """Cumulative-at-export histogram: per-bucket counts (last slot is +Inf) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[int]:
        out, total = [], 0
        for c in self.counts:
            total += c
            out.append(total)
        return out


class AppRequestStats:
    __slots__ = ("by_code", "duration", "held", "held_duration", "rejected_held")

    def __init__(self) -> None:
        self.by_code: dict[int, int] = {}
        self.duration = Histogram(REQUEST_BUCKETS)
        self.held = 0  # currently held
        self.held_duration = Histogram(WAKE_BUCKETS)
        self.rejected_held = 0  # turned away because the hold queue was full


class RequestStats:
    """Per-app request figures. Requests for unknown hosts count under app ""."""

    def __init__(self) -> None:
        self.apps: dict[str, AppRequestStats] = {}

    def app(self, name: str) -> AppRequestStats:
        s = self.apps.get(name)
        if s is None:
            s = self.apps[name] = AppRequestStats()
        return s

    def record(self, app: str, status: int, seconds: float) -> None:
        s = self.apps.get(app) or self.app(app)
        s.by_code[status] = s.by_code.get(status, 0) + 1
        s.duration.observe(seconds)

    def forget(self, app: str) -> None:
        """`app` was removed: its figures go (a request still in flight writes to the
        record it holds, no longer here); if it comes back, it counts from zero."""
        self.apps.pop(app, None)


class WakeStats:
    """Control-plane figures: one writer, the control plane."""

    def __init__(self) -> None:
        self.wakes: dict[tuple[str, str], int] = {}  # (app, result) → count
        self.wake_duration: dict[str, Histogram] = {}
        self.sleeps: dict[str, int] = {}

    def wake_finished(self, app: str, result: str, seconds: float) -> None:
        key = (app, result)
        self.wakes[key] = self.wakes.get(key, 0) + 1
        if result == "ready":
            h = self.wake_duration.get(app)
            if h is None:
                h = self.wake_duration[app] = Histogram(WAKE_BUCKETS)
            h.observe(seconds)

    def slept(self, app: str) -> None:
        self.sleeps[app] = self.sleeps.get(app, 0) + 1

    def forget(self, app: str) -> None:
        """`app` was removed: its figures go; if it comes back, it counts from zero."""
        for result in [r for a, r in self.wakes if a == app]:
            del self.wakes[(app, result)]
        self.wake_duration.pop(app, None)
        self.sleeps.pop(app, None)


class HeadroomHeld:
    """Placeholder pods wanted and ready, and what one of them holds (millicores, bytes)."""

    __slots__ = ("cpu_millis", "desired", "memory_bytes", "ready")

    def __init__(self, desired: int = 0, ready: int = 0, cpu_millis: int = 0,
                 memory_bytes: int = 0) -> None:
        self.desired = desired
        self.ready = ready
        self.cpu_millis = cpu_millis
        self.memory_bytes = memory_bytes


class PlatformStats:
    """Platform figures: one writer, the platform (leases, watches, API and scale calls).

    The local platform has no peers and no API server: it always leads and writes nothing
    else. The Kubernetes platform flips `leader` with its lease, calls `watch_event` for
    every event it receives (bookmarks included, so a quiet watch is not a stale one) and
    counts restarts, API errors by HTTP status and scale calls by result.
    """

    def __init__(self, *, leader: bool) -> None:
        self.leader = leader
        self.watch_last_event: dict[str, float] = {}  # resource → monotonic time
        self.watch_restarts: dict[str, int] = {}  # resource → count
        self.api_errors: dict[int, int] = {}  # HTTP status → count
        self.scale_calls: dict[str, int] = {}  # "ok" | "conflict" | "error" → count
        # Two-phase sleeps this replica proposed, by outcome: "agreed", "wanted" (a peer
        # or a request here wants the app), "unanswered" (a peer did not answer in time).
        self.sleep_proposals: dict[str, int] = {}
        # Scale-ups that outlived their wake and were scaled back, by why: "crash_loop",
        # "image_pull", "unschedulable", "refused", "give_up_after".
        self.scale_ups_given_up: dict[str, int] = {}
        # Deployments that declare an app but were refused (bad annotations, a host
        # already claimed by an older app): app name → reason.
        self.apps_refused: dict[str, str] = {}
        # The placeholder pods holding room for wakes, as their Deployment says (None: no
        # headroom on this platform).
        self.headroom: HeadroomHeld | None = None
        # Scale-ups whose pods waited for a node longer than SCHEDULING_WAIT (None: this
        # platform schedules nothing).
        self.scheduling_waits: int | None = None

    def watch_event(self, resource: str, now: float) -> None:
        self.watch_last_event[resource] = now

    def watch_restarted(self, resource: str) -> None:
        self.watch_restarts[resource] = self.watch_restarts.get(resource, 0) + 1

    def api_error(self, status: int) -> None:
        self.api_errors[status] = self.api_errors.get(status, 0) + 1

    def scale_called(self, result: str) -> None:
        self.scale_calls[result] = self.scale_calls.get(result, 0) + 1

    def scale_up_given_up(self, reason: str) -> None:
        self.scale_ups_given_up[reason] = self.scale_ups_given_up.get(reason, 0) + 1

    def waited_for_scheduling(self) -> None:
        self.scheduling_waits = (self.scheduling_waits or 0) + 1

    def sleep_proposed(self, result: str) -> None:
        self.sleep_proposals[result] = self.sleep_proposals.get(result, 0) + 1


# The caps that protect memory and the cluster from outsiders (review apps, builds, logs);
# each is named as its config key, which is what an error and a metric show.
CAP_REVIEW_APPS = "review_apps.max_per_repo"
CAP_QUEUED_BUILDS = "build_limits.max_queued"
CAP_LOG_BYTES = "build_limits.log_bytes"
CAP_LOG_BYTES_TOTAL = "build_limits.log_bytes_total"
REFUSING_CAPS = (CAP_REVIEW_APPS, CAP_QUEUED_BUILDS)
LOG_CAPS = (CAP_LOG_BYTES, CAP_LOG_BYTES_TOTAL)


class CapStats:
    """Requests refused by a cap, and build log bytes dropped by one (for the metrics)."""

    def __init__(self) -> None:
        self.refusals: dict[str, int] = dict.fromkeys(REFUSING_CAPS, 0)
        self.log_bytes_dropped: dict[str, int] = dict.fromkeys(LOG_CAPS, 0)

    def refused(self, cap: str) -> None:
        self.refusals[cap] = self.refusals.get(cap, 0) + 1

    def dropped(self, cap: str, nbytes: int) -> None:
        self.log_bytes_dropped[cap] = self.log_bytes_dropped.get(cap, 0) + nbytes

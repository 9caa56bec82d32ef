"""Prometheus metrics: every `wakeproxy_*` family is defined once, in `FAMILIES`.

The collector reads the shared model objects when Prometheus scrapes (on the event
loop, from the admin handler), so the hot path only ever bumps plain integers.

Must never: label by path, client or anything else unbounded (labels are app, code,
state, result, and version/cluster on build_info); register on prometheus_client's
global registry; write to the model objects it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from wakeproxy.model.activity import ActivityLedger, AppActivity
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.stats import Histogram, RequestStats, WakeStats

UNKNOWN_APP = "(unknown)"
# Bucket bounds written the way every other Prometheus client writes them (`le="1.0"`).
_go_float: Callable[[float], str] = floatToGoString


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...]

    def new(self) -> Metric:
        labels = list(self.labels)
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=labels)
        if self.kind == "gauge":
            return GaugeMetricFamily(self.name, self.help, labels=labels)
        return HistogramMetricFamily(self.name, self.help, labels=labels)


REQUESTS = Family(
    "wakeproxy_requests_total", "counter",
    "Requests answered, by app and HTTP status code; app=\"(unknown)\" is an unknown host.",
    ("app", "code"))
REQUEST_DURATION = Family(
    "wakeproxy_request_duration_seconds", "histogram",
    "Time from request head to the end of the response, held time included.", ("app",))
HELD = Family(
    "wakeproxy_held_requests", "gauge",
    "Requests held right now while their app wakes up.", ("app",))
HELD_DURATION = Family(
    "wakeproxy_held_duration_seconds", "histogram",
    "How long requests were held waiting for their app to wake.", ("app",))
HOLD_REJECTED = Family(
    "wakeproxy_hold_rejected_total", "counter",
    "Requests turned away with 503 because the app's hold queue was full.", ("app",))
WAKES = Family(
    "wakeproxy_wakes_total", "counter",
    "Wake attempts finished, by result (ready, failed, timeout, ...).", ("app", "result"))
WAKE_DURATION = Family(
    "wakeproxy_wake_duration_seconds", "histogram",
    "Time from scale-up to the first ready endpoint, for successful wakes.", ("app",))
SLEEPS = Family(
    "wakeproxy_sleeps_total", "counter", "Times the app was scaled to zero.", ("app",))
APPS = Family(
    "wakeproxy_apps", "gauge", "Apps in each state (asleep, waking, awake, stopping).",
    ("state",))
APP_UP = Family(
    "wakeproxy_app_up", "gauge", "1 when the app is awake with a ready endpoint, else 0.",
    ("app",))
ASLEEP_SECONDS = Family(
    "wakeproxy_app_asleep_seconds_total", "counter",
    "Seconds the app has spent scaled to zero since wakeproxy started: the cost it saved.",
    ("app",))
IN_FLIGHT = Family(
    "wakeproxy_in_flight_requests", "gauge",
    "Requests being served or held right now.", ("app",))
TUNNELS = Family(
    "wakeproxy_open_tunnels", "gauge",
    "Open WebSocket and other upgraded connections.", ("app",))
LAST_ACCESS = Family(
    "wakeproxy_app_last_access_timestamp_seconds", "gauge",
    "Unix time of the app's last request (absent until its first one).", ("app",))
BUILD_INFO = Family(
    "wakeproxy_build_info", "gauge", "Always 1; the labels name the version and cluster.",
    ("version", "cluster"))

FAMILIES: tuple[Family, ...] = (
    REQUESTS, REQUEST_DURATION, HELD, HELD_DURATION, HOLD_REJECTED,
    WAKES, WAKE_DURATION, SLEEPS,
    APPS, APP_UP, ASLEEP_SECONDS,
    IN_FLIGHT, TUNNELS, LAST_ACCESS,
    BUILD_INFO,
)


def _app_label(app: str) -> str:
    return app or UNKNOWN_APP


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    cumulative = h.cumulative()
    out: list[tuple[str, float]] = [
        (_go_float(bound), count) for bound, count in zip(h.bounds, cumulative, strict=False)
    ]
    out.append(("+Inf", cumulative[-1]))
    return out


class WakeproxyCollector(Collector):
    """Reads the model at scrape time and yields every family in `FAMILIES`."""

    def __init__(
        self,
        *,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        request_stats: RequestStats,
        wake_stats: WakeStats,
        clock: Clock,
        cluster: str,
        version: str,
    ) -> None:
        self._board = board
        self._ledger = ledger
        self._requests = request_stats
        self._wakes = wake_stats
        self._clock = clock
        self._cluster = cluster
        self._version = version

    def describe(self) -> Iterable[Metric]:
        return [f.new() for f in FAMILIES]

    def collect(self) -> Iterator[Metric]:
        m = {f.name: f.new() for f in FAMILIES}
        self._collect_requests(m)
        self._collect_wakes(m)
        self._collect_apps(m)
        _add(m[BUILD_INFO.name], [self._version, self._cluster], 1)
        return iter(m.values())

    def _collect_requests(self, m: dict[str, Metric]) -> None:
        for app, s in list(self._requests.apps.items()):
            label = _app_label(app)
            for code, count in sorted(s.by_code.items()):
                _add(m[REQUESTS.name], [label, str(code)], count)
            _add_histogram(m[REQUEST_DURATION.name], [label], s.duration)
            _add(m[HELD.name], [label], s.held)
            _add_histogram(m[HELD_DURATION.name], [label], s.held_duration)
            _add(m[HOLD_REJECTED.name], [label], s.rejected_held)

    def _collect_wakes(self, m: dict[str, Metric]) -> None:
        for (app, result), count in sorted(self._wakes.wakes.items()):
            _add(m[WAKES.name], [_app_label(app), result], count)
        for app, h in sorted(self._wakes.wake_duration.items()):
            _add_histogram(m[WAKE_DURATION.name], [_app_label(app)], h)
        for app, count in sorted(self._wakes.sleeps.items()):
            _add(m[SLEEPS.name], [_app_label(app)], count)

    def _collect_apps(self, m: dict[str, Metric]) -> None:
        mono = self._clock.monotonic()
        wall = self._clock.wall()
        per_phase = dict.fromkeys(Phase, 0)
        for state in self._board:
            per_phase[state.phase] += 1
            name = state.name
            up = state.phase is Phase.AWAKE and bool(state.endpoints)
            _add(m[APP_UP.name], [name], 1 if up else 0)
            _add(m[ASLEEP_SECONDS.name], [name], state.total_asleep(mono))
            activity = self._ledger.peek(name) or _IDLE
            _add(m[IN_FLIGHT.name], [name], activity.in_flight)
            _add(m[TUNNELS.name], [name], activity.tunnels)
            if activity.last_access is not None:
                _add(m[LAST_ACCESS.name], [name], wall - (mono - activity.last_access))
        for phase, count in per_phase.items():
            _add(m[APPS.name], [phase.value], count)


_IDLE = AppActivity()  # what an app that never had a request reads as; never written


def _add(metric: Metric, labels: list[str], value: float) -> None:
    assert isinstance(metric, CounterMetricFamily | GaugeMetricFamily)
    metric.add_metric(labels, value)


def _add_histogram(metric: Metric, labels: list[str], h: Histogram) -> None:
    assert isinstance(metric, HistogramMetricFamily)
    metric.add_metric(labels, _buckets(h), h.sum)


def build_registry(
    *,
    board: ReadinessBoard,
    ledger: ActivityLedger,
    request_stats: RequestStats,
    wake_stats: WakeStats,
    clock: Clock,
    cluster: str,
    version: str,
) -> CollectorRegistry:
    """A dedicated registry: process, platform and GC defaults plus every wakeproxy family."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(
        WakeproxyCollector(
            board=board, ledger=ledger, request_stats=request_stats, wake_stats=wake_stats,
            clock=clock, cluster=cluster, version=version,
        )
    )
    return registry

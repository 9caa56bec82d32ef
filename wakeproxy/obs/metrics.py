"""Prometheus metrics: the collector that fills every family of `families.FAMILIES`.

The collector reads the shared model objects when Prometheus scrapes (on the event
loop, from the admin handler), so the hot path only ever bumps plain integers.

Must never: label by path, client or anything else unbounded (see `families`); register
on prometheus_client's global registry; write to the model objects it reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

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
from wakeproxy.model.stats import (
    CapStats,
    Histogram,
    PlatformStats,
    RequestStats,
    WakeStats,
)
from wakeproxy.obs.families import (
    API_ERRORS,
    APP_UP,
    APPS,
    APPS_REFUSED,
    ASLEEP_SECONDS,
    AWAKE_REPLICAS,
    BUILD_INFO,
    CAP_REFUSALS,
    COST,
    FAMILIES,
    HEADROOM_CPU,
    HEADROOM_MEMORY,
    HEADROOM_PODS,
    HELD,
    HELD_DURATION,
    HOLD_REJECTED,
    IN_FLIGHT,
    LAST_ACCESS,
    LEADER,
    LOG_BYTES_DROPPED,
    MAX_HELD,
    REQUEST_DURATION,
    REQUESTS,
    SCALE_CALLS,
    SCALE_UPS_GIVEN_UP,
    SCHEDULING_WAITS,
    SLEEP_PROPOSALS,
    SLEEPS,
    TUNNELS,
    WAKE_DURATION,
    WAKES,
    WATCH_LAST_EVENT,
    WATCH_RESTARTS,
    Family,
)
from wakeproxy.settings import Savings

__all__ = ["FAMILIES", "UNKNOWN_APP", "Family", "WakeproxyCollector", "build_registry",
           "status_class"]

UNKNOWN_APP = "(unknown)"
# The results a wake ends with (controlplane.lifecycle.WakeOutcome). Every app exports all
# of them from the start, at 0: an alert on increase() cannot see a counter's first step.
WAKE_RESULTS = ("ready", "failed", "timeout")
# Bucket bounds written the way every other Prometheus client writes them (`le="1.0"`).
_go_float: Callable[[float], str] = floatToGoString


def _app_label(app: str) -> str:
    return app or UNKNOWN_APP


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    cumulative = h.cumulative()
    out: list[tuple[str, float]] = [
        (_go_float(bound), count) for bound, count in zip(h.bounds, cumulative, strict=False)
    ]
    out.append(("+Inf", cumulative[-1]))
    return out


def status_class(code: int) -> str:
    """200 → "2xx": five values at most per app, whatever statuses apps invent."""
    return f"{code // 100}xx" if 100 <= code <= 599 else "other"


class WakeproxyCollector(Collector):
    """Reads the model at scrape time and yields every family in `FAMILIES`."""

    def __init__(
        self,
        *,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        request_stats: RequestStats,
        wake_stats: WakeStats,
        platform_stats: PlatformStats,
        savings: Savings,
        clock: Clock,
        cluster: str,
        version: str,
        cap_stats: CapStats,
    ) -> None:
        self._caps = cap_stats
        self._board = board
        self._ledger = ledger
        self._requests = request_stats
        self._wakes = wake_stats
        self._platform = platform_stats
        self._savings = savings
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
        self._collect_platform(m)
        _add(m[COST.name], [self._savings.currency], self._savings.cost_per_replica_hour)
        _add(m[BUILD_INFO.name], [self._version, self._cluster], 1)
        for cap, count in sorted(self._caps.refusals.items()):
            _add(m[CAP_REFUSALS.name], [cap], count)
        for cap, count in sorted(self._caps.log_bytes_dropped.items()):
            _add(m[LOG_BYTES_DROPPED.name], [cap], count)
        return iter(m.values())

    def _collect_requests(self, m: dict[str, Metric]) -> None:
        for state in self._board:
            if state.name not in self._requests.apps:  # 0 from the start, for alerts
                _add(m[HOLD_REJECTED.name], [state.name], 0)
        for app, s in list(self._requests.apps.items()):
            label = _app_label(app)
            by_class: dict[str, int] = {}
            for code, count in list(s.by_code.items()):
                key = status_class(code)
                by_class[key] = by_class.get(key, 0) + count
            for key, count in sorted(by_class.items()):
                _add(m[REQUESTS.name], [label, key], count)
            _add_histogram(m[REQUEST_DURATION.name], [label], s.duration)
            _add(m[HELD.name], [label], s.held)
            _add_histogram(m[HELD_DURATION.name], [label], s.held_duration)
            _add(m[HOLD_REJECTED.name], [label], s.rejected_held)

    def _collect_wakes(self, m: dict[str, Metric]) -> None:
        wakes = dict.fromkeys(((s.name, r) for s in self._board for r in WAKE_RESULTS), 0)
        wakes.update(self._wakes.wakes)
        for (app, result), count in sorted(wakes.items()):
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
            _add(m[AWAKE_REPLICAS.name], [name], state.policy.awake_replicas)
            _add(m[MAX_HELD.name], [name], state.policy.max_held_requests)
            activity = self._ledger.peek(name) or _IDLE
            _add(m[IN_FLIGHT.name], [name], activity.in_flight)
            _add(m[TUNNELS.name], [name], activity.tunnels)
            if activity.last_access is not None:
                _add(m[LAST_ACCESS.name], [name], wall - (mono - activity.last_access))
        for phase, count in per_phase.items():
            _add(m[APPS.name], [phase.value], count)

    def _collect_platform(self, m: dict[str, Metric]) -> None:
        p = self._platform
        mono = self._clock.monotonic()
        wall = self._clock.wall()
        _add(m[LEADER.name], [], 1 if p.leader else 0)
        for resource, at in sorted(p.watch_last_event.items()):
            _add(m[WATCH_LAST_EVENT.name], [resource], wall - (mono - at))
        for resource, count in sorted(p.watch_restarts.items()):
            _add(m[WATCH_RESTARTS.name], [resource], count)
        for code, count in sorted(p.api_errors.items()):
            _add(m[API_ERRORS.name], [str(code)], count)
        for result, count in sorted(p.scale_calls.items()):
            _add(m[SCALE_CALLS.name], [result], count)
        for reason, count in sorted(p.scale_ups_given_up.items()):
            _add(m[SCALE_UPS_GIVEN_UP.name], [reason], count)
        for result, count in sorted(p.sleep_proposals.items()):
            _add(m[SLEEP_PROPOSALS.name], [result], count)
        for app in sorted(p.apps_refused):
            _add(m[APPS_REFUSED.name], [app], 1)
        if p.scheduling_waits is not None:
            _add(m[SCHEDULING_WAITS.name], [], p.scheduling_waits)
        held = p.headroom
        if held is not None:
            for state, pods in (("desired", held.desired), ("ready", held.ready)):
                _add(m[HEADROOM_PODS.name], [state], pods)
                _add(m[HEADROOM_CPU.name], [state], pods * held.cpu_millis / 1000)
                _add(m[HEADROOM_MEMORY.name], [state], pods * held.memory_bytes)


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
    platform_stats: PlatformStats | None = None,
    savings: Savings | None = None,
    cap_stats: CapStats | None = None,
) -> CollectorRegistry:
    """A dedicated registry: process, platform and GC defaults plus every wakeproxy family.

    Without `platform_stats` the platform is one with no peers: it always leads.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(
        WakeproxyCollector(
            board=board, ledger=ledger, request_stats=request_stats, wake_stats=wake_stats,
            platform_stats=platform_stats or PlatformStats(leader=True),
            savings=savings or Savings(), clock=clock, cluster=cluster, version=version,
            cap_stats=cap_stats or CapStats(),
        )
    )
    return registry

"""Every `wakeproxy_*` metric family, defined once: name, type, HELP text and labels.

Conventions: base units in the name (`_seconds`, `_bytes`), counters end in `_total`,
timestamps are `_timestamp_seconds` (Unix time). Labels are bounded: app (one per
configured app, plus "(unknown)" for unknown hosts), code (HTTP status class for
requests, exact API status for the Kubernetes API), state, result, resource, currency,
cap (the config key of one of the fixed caps), and version/cluster on build_info. Never
path, client, host, pod or build id.

Must never: define a family outside `FAMILIES`, or a label whose values grow with traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)


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

    def sample_names(self) -> tuple[str, ...]:
        """The names of the series this family exposes, as PromQL sees them."""
        if self.kind == "histogram":
            return tuple(self.name + s for s in ("_bucket", "_sum", "_count"))
        return (self.name,)


# -- requests (written by the data plane) ---------------------------------------------

REQUESTS = Family(
    "wakeproxy_requests_total", "counter",
    "Requests answered, by app and HTTP status class (1xx..5xx); app=\"(unknown)\" is an "
    "unknown host. Exact statuses and reasons are in the access log.",
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

# -- wakes and sleeps (written by the control plane) ----------------------------------

WAKES = Family(
    "wakeproxy_wakes_total", "counter",
    "Wake attempts finished, by result (ready, failed, timeout, not_deployed: nothing "
    "deployed to wake yet).", ("app", "result"))
WAKE_DURATION = Family(
    "wakeproxy_wake_duration_seconds", "histogram",
    "Time from scale-up to the first ready endpoint, for successful wakes.", ("app",))
SLEEPS = Family(
    "wakeproxy_sleeps_total", "counter", "Times the app was scaled to zero.", ("app",))

# -- live app state (the readiness board and activity ledger) -------------------------

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
AWAKE_REPLICAS = Family(
    "wakeproxy_app_awake_replicas", "gauge",
    "Replicas the app runs when awake: replica-seconds saved = asleep seconds x this.",
    ("app",))
MAX_HELD = Family(
    "wakeproxy_app_max_held_requests", "gauge",
    "The app's hold queue size (max_held_requests); beyond it requests get 503.", ("app",))
IN_FLIGHT = Family(
    "wakeproxy_in_flight_requests", "gauge",
    "Requests being served or held right now.", ("app",))
TUNNELS = Family(
    "wakeproxy_open_tunnels", "gauge",
    "Open WebSocket and other upgraded connections.", ("app",))
LAST_ACCESS = Family(
    "wakeproxy_app_last_access_timestamp_seconds", "gauge",
    "Unix time of the app's last request (absent until its first one).", ("app",))

# -- this wakeproxy -------------------------------------------------------------------

COST = Family(
    "wakeproxy_savings_cost_per_replica_hour", "gauge",
    "Configured cost of one replica for one hour (savings.cost_per_replica_hour; 0 when "
    "not set), in the currency named by the label.", ("currency",))
BUILD_INFO = Family(
    "wakeproxy_build_info", "gauge", "Always 1; the labels name the version and cluster.",
    ("version", "cluster"))

# -- the platform (PlatformStats) -----------------------------------------------------
# KUBERNETES_METRICS: written by the Kubernetes platform. The local platform always leads
# (wakeproxy_leader 1) and has no watches, API server or scale calls, so the other four
# families are exported without samples there; alert rules can rely on their names.

LEADER = Family(
    "wakeproxy_leader", "gauge",
    "1 when this replica holds the leader lease and runs the sweeper, else 0.", ())
WATCH_LAST_EVENT = Family(
    "wakeproxy_watch_last_event_timestamp_seconds", "gauge",
    "Unix time of the last event (bookmarks included) on the watch of each resource.",
    ("resource",))
WATCH_RESTARTS = Family(
    "wakeproxy_watch_restarts_total", "counter",
    "Times the watch of each resource was restarted (stream ended, 410 Gone, error).",
    ("resource",))
API_ERRORS = Family(
    "wakeproxy_api_errors_total", "counter",
    "Kubernetes API calls that failed, by HTTP status (\"0\": no answer).", ("code",))
SCALE_CALLS = Family(
    "wakeproxy_scale_calls_total", "counter",
    "Replica count writes (the scale subresource; a scale to zero patches the Deployment), "
    "by result (ok, conflict, error).", ("result",))
SCALE_UPS_GIVEN_UP = Family(
    "wakeproxy_scale_ups_given_up_total", "counter",
    "Scale-ups that outlived their wake and were scaled back, by reason (crash_loop, "
    "image_pull, unschedulable, refused, give_up_after).", ("reason",))
SLEEP_PROPOSALS = Family(
    "wakeproxy_sleep_proposals_total", "counter",
    "Sleeps this replica proposed to its peers before scaling down, by outcome (agreed; "
    "wanted: a request wanted the app; unanswered: a peer did not answer in time).",
    ("result",))

APPS_REFUSED = Family(
    "wakeproxy_app_refused", "gauge",
    "1 for each annotated Deployment that is not served (its hosts are taken by another "
    "app or its annotations are invalid); the reason is in the log.", ("app",))

CAP_REFUSALS = Family(
    "wakeproxy_cap_refusals_total", "counter",
    "Requests refused (429) because a cap was reached, by cap (its config key: "
    "review_apps.max_per_repo, build_limits.max_queued).", ("cap",))
LOG_BYTES_DROPPED = Family(
    "wakeproxy_build_log_bytes_dropped_total", "counter",
    "Build log bytes dropped from memory, by cap: build_limits.log_bytes (the oldest output "
    "of a long log) or build_limits.log_bytes_total (finished logs, read back from disk or "
    "the build pod when asked for).", ("cap",))

# The headroom: placeholder pods holding room for sleeping apps' wakes (k8s/README.md).
HEADROOM_PODS = Family(
    "wakeproxy_headroom_pods", "gauge",
    "Placeholder pods holding room for wakes: wanted (desired) and running (ready); fewer "
    "ready than desired means evicted ones wait for a node.", ("state",))
HEADROOM_CPU = Family(
    "wakeproxy_headroom_cpu_cores", "gauge",
    "CPU requested by the placeholder pods, wanted (desired) and held (ready).", ("state",))
HEADROOM_MEMORY = Family(
    "wakeproxy_headroom_memory_bytes", "gauge",
    "Memory requested by the placeholder pods, wanted (desired) and held (ready).",
    ("state",))
SCHEDULING_WAITS = Family(
    "wakeproxy_wakes_waited_for_scheduling_total", "counter",
    "Scale-ups written by this replica whose pods still waited for a node 2 s later "
    "(Pending, not scheduled): wakes the headroom did not cover.", ())

KUBERNETES_METRICS: tuple[Family, ...] = (
    LEADER, WATCH_LAST_EVENT, WATCH_RESTARTS, API_ERRORS, SCALE_CALLS, SCALE_UPS_GIVEN_UP,
    SLEEP_PROPOSALS, APPS_REFUSED, HEADROOM_PODS, HEADROOM_CPU, HEADROOM_MEMORY,
    SCHEDULING_WAITS,
)

FAMILIES: tuple[Family, ...] = (
    REQUESTS, REQUEST_DURATION, HELD, HELD_DURATION, HOLD_REJECTED,
    WAKES, WAKE_DURATION, SLEEPS,
    APPS, APP_UP, ASLEEP_SECONDS, AWAKE_REPLICAS, MAX_HELD,
    IN_FLIGHT, TUNNELS, LAST_ACCESS,
    COST, BUILD_INFO, CAP_REFUSALS, LOG_BYTES_DROPPED,
    *KUBERNETES_METRICS,
)

"""What every plane needs to know about an app, whatever the platform runs it on."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AwakeWindow:
    """A time the app is kept awake: from each start of `cron` (a five-field cron
    expression in the schedule's time zone) for `seconds`."""

    cron: str
    seconds: float


@dataclass(frozen=True, slots=True)
class AwakeSchedule:
    """When an app is woken before anyone asks and kept awake (e.g. staging during the
    working day); outside its windows `idle_after` applies as usual."""

    time_zone: str  # an IANA zone name, like Europe/Berlin
    windows: tuple[AwakeWindow, ...]


@dataclass(frozen=True, slots=True)
class AppPolicy:
    """Per-app rules. Built once from config (or a platform's annotations), never mutated."""

    name: str
    hosts: tuple[str, ...]
    # Seconds without a request before the sweeper puts it to sleep; math.inf: never
    # (`idle_after: never`, e.g. production apps).
    idle_after: float = 300.0
    wake_timeout: float = 60.0
    max_held_requests: int = 1000
    # Serve browsers a self-refreshing "waking up" page instead of holding them, once a
    # browser request has been held `waiting_page_after` seconds and the app is not ready
    # yet (an app that wakes quickly is shown at once, without the page's reload).
    waiting_page: bool = False
    waiting_page_after: float = 1.0
    # Held requests released at once when the app becomes ready; the rest follow one
    # by one as earlier ones get their response head (the app proved it can serve).
    release_concurrency: int = 16
    # Paths whose requests do not count as activity (health checks must not keep an app awake).
    ignored_paths: tuple[str, ...] = ()
    # How often a waking app is probed, and what: a TCP connect, or an HTTP GET of this
    # path answered below 500 when set.
    probe_interval: float = 0.005
    readiness_path: str | None = None
    # Kubernetes: a scale-up whose pods are still starting (being scheduled, pulling their
    # image, not ready yet) outlives the wake that timed out on it this long, then is
    # scaled back; pods failing for good (crash loop, image pull failing) give up sooner.
    give_up_after: float = 900.0
    # Replicas the app runs when awake: each second asleep saves this many replica-seconds
    # (the local platform runs one process per app).
    awake_replicas: int = 1
    # Why the app cannot be woken at all yet (built from source, no release deployed): a
    # request is answered 503 with Retry-After and this reason, and the platform is not
    # asked. Set by platforms whose apps are routed before their first deploy (Kubernetes).
    unavailable: str | None = None
    # The next stage of the app's pipeline (`shop` → `shop-production`): `wakeproxy
    # promote` deploys exactly the release the app runs onto that app.
    promote_to: str | None = None
    # Woken at each window's start and never swept within a window.
    awake_schedule: AwakeSchedule | None = None

    @property
    def never_sleeps(self) -> bool:
        return math.isinf(self.idle_after)


def not_deployed(app: str) -> str:
    """Why an app built from source answers 503 before its first deploy, and the one
    command that fixes it (a plain `wakeproxy build` builds but does not deploy)."""
    return f"no release deployed yet (build and deploy one: wakeproxy build {app} --deploy)"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ready address of an app."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

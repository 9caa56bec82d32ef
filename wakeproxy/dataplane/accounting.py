"""What every request does at its start and at its end, whichever path serves it.

Owns counting a request in the activity ledger (as use of its app, or for an ignored
path only as in flight), and at its end the ledger again, the request stats and the
access record. The ledger's `begin`/`end` and the stats' `record` are written out here on
the records the request's `Route` holds (one cache hit gives them all), for they run for
every request: the data plane is their one writer. It never touches a socket.
"""

from __future__ import annotations

from bisect import bisect_left

from wakeproxy.dataplane.context import Context, Route
from wakeproxy.model.activity import AppActivity
from wakeproxy.model.board import AppState

# How a request counts in the activity ledger (an int: cheaper than an enum here).
NOT_COUNTED, COUNTED, QUIET = 0, 1, 2


def begin_counting(now: float, activity: AppActivity, state: AppState, target: bytes) -> int:
    """A request for the app of `state` starts at `now` (its start, read once for both):
    counted on its `activity` record, as use of the app or, for one of its ignored paths
    (a health check), only as in flight. The ledger's `begin`, written out on its record:
    this runs for every request."""
    activity.in_flight += 1
    ignored = state.policy.ignored_paths
    if ignored and target.split(b"?", 1)[0].decode("latin-1") in ignored:
        return QUIET
    activity.requests += 1
    activity.last_access = now
    return COUNTED


def settle(
    ctx: Context,
    route: Route,
    counted: int,
    started: float,
    status: int,
    method: bytes,
    path: bytes,
    held: float | None,
    request_id: bytes,
    client: str,
    upstream: str | None,
    bytes_in: int,
    bytes_out: int,
    reason: str | None,
) -> None:
    """A request on `route` ended (as `counted` by `begin_counting`): the ledger, the
    stats and the access record, for the exchange and the plain path alike. The ledger's
    `end` and the stats' `record` are written out: this runs for every request."""
    now = ctx.monotonic()
    duration = now - started
    host, app, _, activity, app_stats = route
    if counted and activity is not None:  # end_counting, written out
        activity.in_flight -= 1
        if counted == COUNTED:
            activity.last_access = now
    by_code = app_stats.by_code
    by_code[status] = by_code.get(status, 0) + 1
    histogram = app_stats.duration
    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
    histogram.sum += duration
    access_log = ctx.access_log
    if access_log is None:  # access lines are off: no record to build
        return
    # A plain tuple (`AccessRow`): one bytecode to build and to unpack (see access.py).
    # The method, path and request id as read: the sink decodes them, a batch at a time.
    record = (
        app, host, method, path, status, duration, held, request_id, client, upstream,
        bytes_in, bytes_out, reason, started,
    )  # fmt: skip
    try:
        access_log(record)
    except Exception:
        ctx.log.exception("access log sink failed")


def end_counting(route: Route, counted: int, now: float) -> None:
    """A request counted by `begin_counting` is no longer in flight (a tunnel taking over
    from it); nothing for one not counted."""
    activity = route[3]
    if counted and activity is not None:
        activity.in_flight -= 1
        if counted == COUNTED:
            activity.last_access = now

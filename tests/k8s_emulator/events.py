"""Events the emulator's controllers record, as the real controllers' event recorders do.

Owns one thing: a `core/v1` Event about an object (`involvedObject`), of type Warning or
Normal, with a reason and message; a repeat of the same reason and message on the same
object bumps `count` and `lastTimestamp` instead of adding an Event (the recorder's
aggregation). Used for pods refused at creation (`FailedCreate`). Never decides anything.
"""

from __future__ import annotations

import time

from . import resources as r
from .meta import JSON, format_time, meta
from .store import Store


def record(store: Store, obj: JSON, *, reason: str, message: str, component: str,
           kind: str | None = None, warning: bool = True) -> None:
    m = meta(obj)
    ns = str(m.get("namespace") or "default")
    involved = {"apiVersion": obj.get("apiVersion") or "v1", "kind": kind or obj.get("kind"),
                "name": m.get("name"), "namespace": ns, "uid": m.get("uid")}
    at = format_time()
    for event in store.items(r.EVENTS):
        if (meta(event).get("namespace") == ns and event.get("involvedObject") == involved
                and event.get("reason") == reason and event.get("message") == message):

            def again(e: JSON) -> None:
                e["count"] = int(e.get("count") or 1) + 1
                e["lastTimestamp"] = at

            store.mutate(r.EVENTS, ns, str(meta(event)["name"]), again)
            return
    store.create(r.EVENTS, {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{m.get('name')}.{time.time_ns():x}", "namespace": ns},
        "involvedObject": involved, "reason": reason, "message": message,
        "type": "Warning" if warning else "Normal", "source": {"component": component},
        "reportingComponent": component, "reportingInstance": "",
        "firstTimestamp": at, "lastTimestamp": at, "count": 1,
    }, ns)

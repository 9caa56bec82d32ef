"""EndpointSlices of a Service → the pod addresses of an app, ready or still starting.

An endpoint counts as ready when its `ready` condition is true or unset (the API says a
consumer should read unset as ready) and it is not terminating. A not-terminating
endpoint that is not ready yet is "starting": the platform probes it directly, so a wake
need not wait for the control plane to publish readiness. The port is the app's
`wakeproxy.io/port`: a number is used as is, a name is looked up in each slice's ports
(slices without it are skipped). Pure: no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wakeproxy.model.apps import Endpoint
from wakeproxy.platforms.kubernetes.api import JSON

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class PodAddresses:
    ready: frozenset[Endpoint] = frozenset()
    starting: frozenset[Endpoint] = frozenset()


def service_of(endpoint_slice: JSON) -> str | None:
    labels = (endpoint_slice.get("metadata") or {}).get("labels") or {}
    name = labels.get(SERVICE_NAME_LABEL)
    return str(name) if name else None


def _slice_port(endpoint_slice: JSON, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    for entry in endpoint_slice.get("ports") or []:
        if isinstance(entry, dict) and entry.get("name") == port:
            number = entry.get("port")
            if isinstance(number, int) and 0 < number < 65536:
                return number
    return None


def addresses_of(slices: Iterable[JSON], port: int | str) -> PodAddresses:
    ready: set[Endpoint] = set()
    starting: set[Endpoint] = set()
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType") not in (None, "IPv4", "IPv6"):
            continue  # FQDN slices name no pod
        number = _slice_port(endpoint_slice, port)
        if number is None:
            continue
        for entry in endpoint_slice.get("endpoints") or []:
            if not isinstance(entry, dict):
                continue
            addresses = entry.get("addresses") or []
            if not addresses:
                continue
            conditions = entry.get("conditions") or {}
            if conditions.get("terminating") is True:
                continue
            # Every address of one endpoint reaches the same pod: one is enough.
            endpoint = Endpoint(str(addresses[0]), number)
            if conditions.get("ready") is False:
                starting.add(endpoint)
            else:
                ready.add(endpoint)
    return PodAddresses(frozenset(ready), frozenset(starting - ready))

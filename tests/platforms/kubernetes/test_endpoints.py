"""EndpointSlices → the addresses of an app: which serve now, which are starting."""

from __future__ import annotations

from typing import Any

from wakeproxy.model.apps import Endpoint
from wakeproxy.platforms.kubernetes.endpoints import addresses_of


def endpoint(ip: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions}


def slice_(*endpoints: dict[str, Any], ports: list[dict[str, Any]] | None = None,
           address_type: str = "IPv4") -> dict[str, Any]:
    return {"addressType": address_type, "endpoints": list(endpoints),
            "ports": ports if ports is not None else [{"name": "http", "port": 8080}]}


def test_ready_unset_and_terminating_conditions() -> None:
    addresses = addresses_of([slice_(
        endpoint("10.0.0.1", ready=True),
        endpoint("10.0.0.2"),  # unset reads as ready
        endpoint("10.0.0.3", ready=False),
        endpoint("10.0.0.4", ready=False, terminating=True),
        endpoint("10.0.0.5", ready=True, terminating=True),
    )], "http")
    assert addresses.ready == {Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080)}
    assert addresses.starting == {Endpoint("10.0.0.3", 8080)}


def test_named_port_is_looked_up_per_slice_and_numbers_are_used_as_is() -> None:
    slices = [
        slice_(endpoint("10.0.0.1"), ports=[{"name": "http", "port": 3000}]),
        slice_(endpoint("10.0.0.2"), ports=[{"name": "metrics", "port": 9000}]),
        slice_(endpoint("shop.example.com"), address_type="FQDN"),
    ]
    assert addresses_of(slices, "http").ready == {Endpoint("10.0.0.1", 3000)}
    assert addresses_of(slices[:2], 8080).ready == {
        Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080)}

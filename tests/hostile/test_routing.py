"""Routing under hostile Host values, and no open proxy: whatever a request names, wakeproxy
connects only to a known app's endpoint."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dataplane.conftest import Proxy, Upstream
from tests.hostile.conftest import Canary
from tests.hostile.rawhttp import first_response, still_serves
from tests.soak.support import figure
from wakeproxy.dataplane.activator import Activator
from wakeproxy.dataplane.context import Context
from wakeproxy.dataplane.errors import BadRequest
from wakeproxy.dataplane.upstream import UpstreamPool
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes, RouteTable
from wakeproxy.model.stats import RequestStats

APPS = {"shop": ("shop.test", "*.review.test"), "idn": ("xn--bcher-kva.test",)}


@pytest.fixture(scope="module")
def ctx() -> Context:
    """The data plane's routing context, as a running proxy builds it (no socket needed)."""
    loop = asyncio.new_event_loop()
    clock = SystemClock()
    board, demand, stats = ReadinessBoard(clock), WakeDemand(), RequestStats()
    routes = Routes(RouteTable.build(APPS.items()))
    return Context(
        loop=loop, routes=routes, board=board, ledger=ActivityLedger(clock), demand=demand,
        stats=stats, access_log=lambda r: None, limits=Limits(), trusted_proxies=(),
        clock=clock,
        pool=UpstreamPool(loop=loop, max_idle=1, idle_timeout=1, connect_timeout=1),
        activator=Activator(board=board, demand=demand, stats=stats, clock=clock,
                            retry_after=1),
    )


def claims(app: str, host: str) -> bool:
    for pattern in APPS[app]:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


HOSTISH = st.one_of(
    st.binary(max_size=40),
    st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]@/%* ,\t",
            max_size=40).map(str.encode),
    st.builds(lambda sub, port: sub + b"shop.test" + port,
              st.sampled_from([b"", b"x.", b"a.review.", b"SHOP.", b"."]),
              st.sampled_from([b"", b":", b":80", b":65535", b":x", b".", b"/", b"@e"])),
)


@settings(max_examples=1500, deadline=None)
@given(HOSTISH)
def test_any_host_value_routes_only_to_an_app_that_claims_it(ctx: Context, raw: bytes) -> None:
    try:
        host, app = ctx.route(raw)[:2]
    except BadRequest:
        return
    if app:
        assert claims(app, host), (raw, host, app)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["shop.test", "a.review.test", "x.y.review.test", "xn--bcher-kva.test",
                        "other.test", "review.test"]),
       st.sampled_from(["", ":1", ":8080", ":"]), st.booleans(), st.booleans())
def test_port_case_and_trailing_dot_never_change_the_route(
    ctx: Context, host: str, port: str, upper: bool, dot: bool
) -> None:
    variant = (host.upper() if upper else host) + ("." if dot else "") + port
    assert ctx.route(variant.encode())[1] == ctx.route(host.encode())[1]


async def test_no_request_makes_wakeproxy_connect_anywhere_but_the_app(
    shop: Proxy, upstream: Upstream, canary: Canary
) -> None:
    """Every way a request can name a host — request target, Host, X-Forwarded-Host, CONNECT
    — pointed at the canary (a listener on this machine) and at other local addresses."""
    c = f"127.0.0.1:{canary.port}".encode()
    p = str(canary.port).encode()
    elsewhere = [c, b"127.0.0.1", b"localhost:" + p, b"[::1]:" + p, b"0.0.0.0:" + p,
                 b"127.1:" + p, b"2130706433:" + p, b"shop.test@" + c, b"evil.test"]
    targets = [b"/", *(b"http://" + e + b"/x" for e in elsewhere), *elsewhere]
    hosts = [b"shop.test", *elsewhere]
    sent = reached = 0
    for target, host in itertools.product(targets, hosts):
        for method in (b"GET", b"CONNECT", b"OPTIONS"):
            request = (method + b" " + target + b" HTTP/1.1\r\nHost: " + host +
                       b"\r\nX-Forwarded-Host: " + c + b"\r\n\r\n")
            response, raw, _ = await first_response(shop, request, limit=1.0)
            sent += 1
            assert response is not None, request
            assert response.status != 502 and b"Traceback" not in raw
            if response.status == 200:
                reached += 1
    assert canary.connections == 0
    # Only requests the route table sends to the shop app reached it: Host shop.test with
    # an origin-form target.
    assert len(upstream.seen) == reached
    assert all(s.headers["Host"] == "shop.test" for s in upstream.seen)
    assert await still_serves(shop)
    figure("hostile", f"no open proxy: {sent} requests naming other hosts and local "
                      f"addresses in every position: 0 connections to the canary, {reached} "
                      "reached the app they were routed to")

"""Spoofed forwarding headers and hop-by-hop headers: what the app receives is what
wakeproxy saw, unless a trusted proxy (`trusted_proxies`) said otherwise."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Callable

import httptools
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dataplane.conftest import ProxyFactory, Upstream, read_response
from tests.soak.support import figure
from wakeproxy.dataplane.answers import (
    CUT,
    CUT_CLOSE,
    NOT_PLAIN,
    answer_field,
    cut_fields,
    response_head,
)
from wakeproxy.dataplane.headers import (
    HOP_BY_HOP,
    LENGTH,
    RELAYED,
    read_request_head,
    upstream_head,
)

SPOOFED = (
    b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"
    b"X-Request-Id: chosen-by-client\r\nForwarded: for=6.6.6.6;proto=https\r\n"
    b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\n"
    b"X-Forwarded-Client-Cert: Hash=abc;Subject=\"CN=admin\"\r\nTrue-Client-IP: 6.6.6.6\r\n"
)


async def send_from(proxy_port: int, source: str, extra: bytes) -> int:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", proxy_port, local_addr=(source, 0))
    writer.write(b"GET /who HTTP/1.1\r\nHost: shop.test\r\n" + extra + b"\r\n")
    resp = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    return resp.status


async def test_forwarding_headers_from_an_untrusted_client_are_replaced_or_dropped(
    make_proxy: ProxyFactory, upstream: Upstream
) -> None:
    proxy = await make_proxy(trusted_proxies=(ipaddress.ip_network("127.0.0.2/32"),))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    assert await send_from(proxy.port, "127.0.0.1", SPOOFED) == 200
    h = upstream.seen[-1].headers
    assert h.getall("X-Forwarded-For") == ["127.0.0.1"]
    assert h.getall("X-Forwarded-Proto") == ["http"]
    assert h.getall("X-Forwarded-Host") == ["shop.test"]
    assert h.getall("X-Request-Id") != ["chosen-by-client"]
    for name in ("Forwarded", "X-Real-IP", "X-Forwarded-Port", "X-Forwarded-Prefix",
                 "X-Forwarded-Client-Cert", "True-Client-IP"):
        assert name not in h, name


async def test_a_trusted_proxy_may_set_them_and_the_chain_is_extended(
    make_proxy: ProxyFactory, upstream: Upstream
) -> None:
    proxy = await make_proxy(trusted_proxies=(ipaddress.ip_network("127.0.0.2/32"),))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    assert await send_from(proxy.port, "127.0.0.2", SPOOFED) == 200
    h = upstream.seen[-1].headers
    assert h["X-Forwarded-For"] == "6.6.6.6, 127.0.0.2"
    assert h["X-Forwarded-Proto"] == "https"
    assert h["X-Forwarded-Host"] == "evil.test"
    assert h["X-Request-Id"] == "chosen-by-client"
    assert h["Forwarded"] == "for=6.6.6.6;proto=https" and h["X-Real-IP"] == "6.6.6.6"
    # Routing never follows X-Forwarded-Host, even from a trusted proxy.
    assert upstream.seen[-1].path == "/who"


# -- properties of the header rewriting ----------------------------------------------------

TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
VALUE = st.binary(max_size=20).map(
    lambda b: bytes(c for c in b if 0x20 <= c < 0x7F).strip() or b"v")
HOP = st.sampled_from(sorted(HOP_BY_HOP - {b"transfer-encoding", b"upgrade"}))
CASED = st.sampled_from([bytes.lower, bytes.upper, bytes.title])


@st.composite
def request_headers(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], set[bytes]]:
    """Header fields with hop-by-hop ones, a Connection header naming some of them (and
    names that are not there), and client-chosen forwarding headers."""
    names = draw(st.lists(TOKEN, max_size=8, unique=True))
    names = [n for n in names if n not in (b"host", b"content-length")]
    fields = [(draw(CASED)(n), draw(VALUE)) for n in names]
    if draw(st.booleans()):
        fields.append((b"Content-Length", b"%d" % draw(st.integers(0, 10**6))))
        names.append(b"content-length")  # so that Connection may name it too
    fields += [(draw(CASED)(h), draw(VALUE)) for h in draw(st.lists(HOP, max_size=3))]
    fields += [(r, b"6.6.6.6") for r in draw(st.lists(st.sampled_from(sorted(RELAYED)),
                                                      max_size=3, unique=True))]
    fields += [(b"X-Forwarded-For", b"6.6.6.6")] * draw(st.integers(0, 2))
    named = set(draw(st.lists(st.sampled_from(names) if names else TOKEN, max_size=4)))
    named |= set(draw(st.lists(TOKEN, max_size=2)))
    if named:
        fields.append((b"Connection", b", ".join(draw(CASED)(n) for n in named)))
    order = draw(st.permutations(range(len(fields))))
    return [fields[i] for i in order], {n.lower() for n in named}


def parse_head(data: bytes) -> list[tuple[bytes, bytes]]:
    class Sink:
        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value))

    sink = Sink()
    httptools.HttpRequestParser(sink).feed_data(data)
    return sink.headers


@settings(max_examples=400, deadline=None)
@given(request_headers(), st.booleans())
def test_hop_by_hop_and_connection_named_headers_never_go_upstream(
    generated: tuple[list[tuple[bytes, bytes]], set[bytes]], trusted: bool
) -> None:
    fields, named = generated
    keep_alive = True
    head = read_request_head(b"GET", b"/p", [(b"Host", b"shop.test"), *fields], "1.1",
                             keep_alive, False)
    sent = parse_head(upstream_head(head, b"10.1.2.3", trusted, b"rid-1"))
    names = [n for n, _ in sent]
    # Whatever Connection names, the body's framing goes on unchanged: an app reading a
    # body without its length would take it for the next request.
    lengths = [v for n, v in fields if n.lower() == b"content-length"]
    assert [v for n, v in sent if n == b"content-length"] == lengths
    named = named - {b"content-length"}
    assert not (set(names) & HOP_BY_HOP)
    assert not (set(names) & named - {b"host", b"x-forwarded-for", b"x-forwarded-proto",
                                      b"x-forwarded-host", b"x-request-id"})
    assert names.count(b"host") == 1 and names.count(b"x-forwarded-for") == 1
    xff = dict(sent)[b"x-forwarded-for"]
    if trusted:
        assert xff.endswith(b"10.1.2.3")
    else:
        # An untrusted client's claims are never passed on, whatever it sent.
        assert xff == b"10.1.2.3"
        assert not (set(names) & RELAYED)
        assert dict(sent)[b"x-request-id"] == b"rid-1"


@settings(max_examples=300, deadline=None)
@given(request_headers(), st.sampled_from([200, 204, 304, 404]), st.booleans(),
       st.booleans())
def test_response_hop_by_hop_headers_never_reach_the_client(
    generated: tuple[list[tuple[bytes, bytes]], set[bytes]], status: int, http10: bool,
    keep_alive: bool,
) -> None:
    fields, named = generated
    fields = [(n, v) for n, v in fields if n.lower() not in RELAYED]
    if not any(n.lower() == b"content-length" for n, _ in fields):
        fields.append((b"Content-Length", b"0"))
    data, framing, _ = response_head(status, b"X", fields, no_body=False, http10=http10,
                                     keep_alive=keep_alive)
    lines = data.split(b"\r\n")[1:]
    got = [line.split(b":", 1)[0].lower() for line in lines if line]
    for name in got:
        # We add our own Connection (close or keep-alive) and nothing else hop-by-hop.
        assert name == b"connection" or name not in HOP_BY_HOP, name
        assert name not in named or name in (b"content-length", b"connection"), name
    assert got.count(b"connection") <= 1
    if status not in (204, 304):
        assert framing == LENGTH and got.count(b"content-length") == 1


CONNECTION_VALUE = st.sampled_from([b"keep-alive", b"Keep-Alive", b" keep-alive ", b"close",
                                    b"keep-alive, x-secret", b"upgrade", b"x-secret"])
SPACING = st.sampled_from([b": ", b":", b":  ", b":\t"])


def answer_fields(data: bytes) -> list[tuple[bytes, bytes]]:
    class Sink:
        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

    sink = Sink()
    httptools.HttpResponseParser(sink).feed_data(data)
    return sink.headers


@settings(max_examples=300, deadline=None)
@given(request_headers(), st.lists(CONNECTION_VALUE, max_size=2),
       st.lists(st.sampled_from(sorted(HOP_BY_HOP - {b"connection"})), max_size=2), CASED,
       st.lists(SPACING, min_size=12, max_size=12), st.randoms(use_true_random=False))
def test_an_answer_relayed_as_it_came_carries_nothing_hop_by_hop(
    generated: tuple[list[tuple[bytes, bytes]], set[bytes]], connections: list[bytes],
    other_hop: list[bytes], cased: Callable[[bytes], bytes], spacing: list[bytes],
    rnd: random.Random,
) -> None:
    """The plain path relays an answer's bytes as they came, but for the fields
    `answer_field` says to cut: whenever it takes an answer, what reaches the client must
    carry nothing hop-by-hop and every other field as it came; a `Connection` naming
    fields or a Transfer-Encoding must make the answer not plain."""
    fields, _ = generated
    fields = [(n, v) for n, v in fields if n.lower() not in HOP_BY_HOP | RELAYED]
    fields += [(cased(b"connection"), v) for v in connections]
    fields += [(cased(n), b"chunked" if n == b"transfer-encoding" else b"x") for n in other_hop]
    if b"transfer-encoding" in other_hop:  # llhttp refuses it beside a Content-Length
        fields = [(n, v) for n, v in fields if n.lower() != b"content-length"]
    rnd.shuffle(fields)
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(
        n + spacing[i % 12] + v + b"\r\n" for i, (n, v) in enumerate(fields)) + b"\r\n"  # fmt: skip
    seen = answer_fields(head)  # what llhttp reads, as the plain path's callback sees it
    verdicts = [answer_field(n, v) for n, v in seen]
    named = any(n.lower() == b"connection" and v.strip().lower() not in (b"keep-alive", b"close")
                for n, v in fields)  # fmt: skip
    te = any(n.lower() in (b"transfer-encoding",) for n, _ in fields)
    assert (NOT_PLAIN not in verdicts) == (not named and not te)
    if NOT_PLAIN in verdicts:
        return
    cut = [f for f, v in zip(seen, verdicts, strict=True) if v in (CUT, CUT_CLOSE)]
    relayed = cut_fields(head, len(head) - 4, cut)
    assert relayed is not None
    assert answer_fields(relayed) == [f for f in seen if f[0].lower() not in HOP_BY_HOP]
    assert relayed.endswith(b"\r\n\r\n")


def test_property_run_sizes() -> None:
    figure("hostile", "hypothesis: 400 request header sets and 300 response header sets: no "
                      "hop-by-hop or Connection-named header forwarded, X-Forwarded-For from "
                      "an untrusted peer always replaced")

"""Request heads read whole: a head that arrives in one read, on an idle connection, with
nothing a rule needs to see field by field, is checked by llhttp and sent on as it came,
without a Python call per field. Everything else takes the field-by-field reader.

What a client and an app see must not depend on which reader took the request: each
request here is sent once in one write (the whole-head reader's case when it qualifies)
and once with its head split over two reads (always the field-by-field reader), and both
must get the same answers and bring the app the same bytes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dataplane.conftest import Proxy, ProxyFactory, read_head, read_response
from tests.hostile.corpus import CASES
from wakeproxy.dataplane import client as client_module
from wakeproxy.dataplane.headers import (
    _CLAIMED,
    _ONLY_DROPPED,
    _SPECIAL,
    RELAYED,
    ClaimedRawHead,
    RawHead,
    RequestHead,
    raw_request_head,
    read_request_head,
    upstream_head,
)
from wakeproxy.model.limits import Limits

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
BROWSER = (
    b"GET /assets/app.js?v=3 HTTP/1.1\r\nHost: shop.test\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Referer: http://shop.test/\r\nCookie: session=abc123; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\n\r\n"
)


def get(extra: bytes = b"", *, first: bytes = b"Host: shop.test\r\n", line: bytes = b"") -> bytes:
    return (line or b"GET /p?q=1 HTTP/1.1\r\n") + first + extra + b"\r\n"


# Each: what the client sends. Those marked `whole` are read whole when sent in one write.
REQUESTS: dict[str, tuple[bytes, bool]] = {
    "plain-get": (get(), True),
    "browser": (BROWSER, True),
    "delete": (b"DELETE /item/1 HTTP/1.1\r\nHost: shop.test\r\n\r\n", True),
    "host-with-port-and-case": (get(first=b"host:\tShop.Test:80\r\n"), True),
    "host-not-first": (get(first=b"Accept: */*\r\nHost: shop.test\r\n"), False),
    "host-trailing-space": (get(first=b"Host: shop.test \r\n"), False),
    "xff-from-untrusted": (get(b"X-Forwarded-For: 6.6.6.6\r\n"), True),
    "spoofed-forwarding": (
        get(b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nForwarded: for=6.6.6.6\r\n"
            b"X-Real-IP: 6.6.6.6\r\nx-forwarded-port: 443\r\nX-Request-Id: mine\r\n"),
        True,
    ),
    "connection-named": (get(b"Connection: X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n"), False),
    "connection-close": (get(b"Connection: close\r\n"), False),
    "connection-keep-alive": (get(b"X-A: 1\r\nConnection: keep-alive\r\nX-B: 2\r\n"), True),
    "connection-keep-alive-last": (get(b"connection: Keep-Alive\r\n"), True),
    "connection-keep-alive-twice": (
        get(b"Connection: keep-alive\r\nConnection: keep-alive\r\n"), True),
    "connection-keep-alive-and-more": (get(b"Connection: keep-alive, X-A\r\nX-A: 1\r\n"), False),
    "connection-keep-alive-then-te": (get(b"Connection: keep-alive\r\nTE: trailers\r\n"), True),
    "only-dropped": (
        get(b"Keep-Alive: timeout=5\r\nX-A: 1\r\nProxy-Connection: keep-alive\r\nTrailer: X\r\n"),
        True,
    ),
    "claims-then-upgrade": (get(b"X-Forwarded-For: 6.6.6.6\r\nUpgrade: h2c\r\n"), False),
    "chrome": (
        b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: keep-alive\r\n"
        b"Cache-Control: max-age=0\r\nUpgrade-Insecure-Requests: 1\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36\r\n"
        b"Accept: text/html,*/*;q=0.8\r\nAccept-Encoding: gzip, deflate\r\n"
        b"Accept-Language: en-US,en;q=0.9\r\n\r\n",
        True,
    ),
    "hop-by-hop": (
        get(b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
            b"Trailer: X-T\r\nUpgrade: h2c\r\n"),
        False,
    ),
    "underscore-length": (get(b"Content_Length: 5\r\n"), False),
    "underscore-encoding": (get(b"transfer_encoding: chunked\r\n"), False),
    "duplicate-host": (get(b"Host: other.test\r\n"), False),
    "duplicate-host-lowercase": (get(b"host: shop.test\r\n"), False),
    "empty-host": (get(first=b"Host:\r\n"), False),
    "no-host": (get(first=b"X-A: 1\r\n"), False),
    "invalid-host": (get(first=b"Host: shop.test/x\r\n"), True),
    "unknown-host": (get(first=b"Host: nowhere.test\r\n"), True),
    "control-byte-in-value": (get(b"X-A: a\x01b\r\n"), True),
    "space-before-colon": (get(b"X-A : b\r\n"), True),
    "bare-lf-in-head": (get(b"X-A: b\nX-B: c\r\n"), True),
    "obs-fold": (get(b"X-A: b\r\n c\r\n"), True),
    "lowercase-method": (get(line=b"get /p HTTP/1.1\r\n"), False),
    "head": (get(line=b"HEAD /p HTTP/1.1\r\n"), False),
    "http10": (get(line=b"GET /p HTTP/1.0\r\n"), False),
    "absolute-form": (get(line=b"GET http://shop.test/p HTTP/1.1\r\n"), False),
    "options-asterisk": (get(line=b"OPTIONS * HTTP/1.1\r\n"), False),
    "post-with-length": (
        b"POST /p HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n\r\nhello", False),
    "post-chunked": (
        b"POST /p HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        False,
    ),
    "pipelined": (get() + b"GET /second HTTP/1.1\r\nHost: shop.test\r\n\r\n", False),
    "too-many-fields": (get(b"".join(b"X-%d: v\r\n" % i for i in range(120))), False),
    "expect-continue": (
        b"PUT /p HTTP/1.1\r\nHost: shop.test\r\nExpect: 100-continue\r\n"
        b"Content-Length: 2\r\n\r\nhi",
        False,
    ),
}

# What nginx ingress sends on for a browser's GET: its own fields, in its order, after
# Host, then the client's. A trusted proxy's heads like these are read whole.
INGRESS_ID = b"5f0c1a2b3c4d5e6f708192a3b4c5d6e7"


def ingress(xff: bytes = b"X-Forwarded-For: 203.0.113.7\r\n") -> bytes:
    return (
        b"GET /cart?id=7 HTTP/1.1\r\nHost: shop.test\r\nX-Request-ID: " + INGRESS_ID + b"\r\n"
        b"X-Real-IP: 203.0.113.7\r\n" + xff + b"X-Forwarded-Host: shop.test\r\n"
        b"X-Forwarded-Port: 443\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Scheme: https\r\n"
        b"X-Scheme: https\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\n"
        b"Cookie: session=abc123\r\n\r\n"
    )


# Each: what a trusted proxy sends, whether it is read whole, and the X-Forwarded-For the
# app gets (the proxy's chain, then the peer's address).
TRUSTED: dict[str, tuple[bytes, bool, bytes]] = {
    "plain-get": (get(), True, b"127.0.0.1"),
    "chrome": (REQUESTS["chrome"][0], True, b"127.0.0.1"),
    "spoofed-forwarding": (REQUESTS["spoofed-forwarding"][0], True, b"127.0.0.1"),
    "connection-named": (REQUESTS["connection-named"][0], False, b"127.0.0.1"),
    "ingress": (ingress(), True, b"203.0.113.7, 127.0.0.1"),
    "ingress-full-chain": (
        ingress(b"X-Forwarded-For: 198.51.100.2, 203.0.113.7\r\n"), True,
        b"198.51.100.2, 203.0.113.7, 127.0.0.1",
    ),
    "ingress-two-xff": (
        ingress(b"X-Forwarded-For: 198.51.100.2\r\nx-forwarded-for: 203.0.113.7\r\n"), True,
        b"198.51.100.2, 203.0.113.7, 127.0.0.1",
    ),
    "ingress-xff-odd-spacing": (
        ingress(b"X-Forwarded-For:\t 198.51.100.2 ,203.0.113.7  \r\n"), True,
        b"198.51.100.2 ,203.0.113.7  , 127.0.0.1",
    ),
    "ingress-xff-empty": (ingress(b"X-Forwarded-For:\r\n"), True, b"127.0.0.1"),
    "ingress-keep-alive": (
        ingress(b"Connection: keep-alive\r\nX-Forwarded-For: 203.0.113.7\r\n"), True,
        b"203.0.113.7, 127.0.0.1",
    ),
    "ingress-then-upgrade": (ingress(b"Upgrade: h2c\r\n"), False, b"127.0.0.1"),
}

_REQUEST_ID = re.compile(rb"[0-9a-f]{10}-[0-9a-f]+")


def normalized(data: bytes) -> bytes:
    """Bytes with the request ids (new for each request) made equal."""
    return _REQUEST_ID.sub(b"<id>", data)


def as_read(request: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    """A request as an app reads it: its line, its fields (names in any case, values
    without the whitespace around them) in order, and its body."""
    head, _, body = request.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], fields_of(head + b"\r\n\r\n"), body


def by_name(read: tuple[bytes, list[tuple[bytes, bytes]], bytes]) -> tuple:
    """A request as read (`as_read`), its fields grouped by name, each name's in the order
    they came: what a trusted proxy's relayed fields keep (the field reader sends them
    after the others, the whole-head reader where they were)."""
    line, fields, body = read
    return line, sorted(fields, key=lambda f: f[0]), body


async def recording_app(seen: list[bytes]):
    """An app that records each request (head and body) as it got it and answers "ok"."""

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_head(reader)
            body = b""
            length = re.search(rb"(?i)\ncontent-length: *(\d+)", head)
            if length:
                if b"100-continue" in head.lower():
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await reader.readexactly(int(length[1]))
            elif re.search(rb"(?i)\ntransfer-encoding:", head):
                body = await reader.readuntil(b"0\r\n\r\n")
            seen.append(head + body)
            writer.write(OK)
            await writer.drain()

    return app


async def send(proxy: Proxy, data: bytes, *, split: bool) -> bytes:
    """Send `data` on a new connection, then half-close; everything the client got back."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    if split:  # the head over two reads: the field-by-field reader's case
        writer.write(data[:20])
        await writer.drain()
        await asyncio.sleep(0.03)
        data = data[20:]
    writer.write(data)
    writer.write_eof()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def answers(proxy: Proxy, data: bytes, seen: list[bytes], *, split: bool) -> tuple:
    seen.clear()
    before = len(proxy.records)
    got = await send(proxy, data, split=split)
    await asyncio.sleep(0.02)  # the access record is written after the answer
    records = [
        (r.method, r.path, r.status, r.bytes_in, r.bytes_out) for r in proxy.records[before:]
    ]
    return normalized(got), [as_read(normalized(s)) for s in seen], records


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_a_request_gets_the_same_answer_and_reaches_the_app_the_same_whole_or_split(
    name: str, proxy: Proxy, raw_upstream
):
    data, _ = REQUESTS[name]
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    await send(proxy, get(), split=False)  # an upstream connection is pooled: the plain path
    whole = await answers(proxy, data, seen, split=False)
    split = await answers(proxy, data, seen, split=True)
    assert whole == split
    assert whole[0].startswith(b"HTTP/1.1 ")


def spy_on_the_field_reader(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The targets of the requests the field reader reads, from now on."""
    read_by_field: list[bytes] = []

    def spy(method: bytes, url: bytes, *args: object):  # type: ignore[no-untyped-def]
        read_by_field.append(url)
        return read_request_head(method, url, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(client_module, "read_request_head", spy)
    return read_by_field


@pytest.mark.parametrize("name", sorted(TRUSTED))
async def test_a_trusted_proxy_gets_the_same_whole_or_split(
    name: str, make_proxy: ProxyFactory, raw_upstream, monkeypatch: pytest.MonkeyPatch
):
    data, whole_read, xff = TRUSTED[name]
    proxy = await make_proxy(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    read_by_field = spy_on_the_field_reader(monkeypatch)
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    await send(proxy, get(), split=False)
    read_by_field.clear()
    got, reads, records = await answers(proxy, data, seen, split=False)
    assert (read_by_field == []) is whole_read
    split = await answers(proxy, data, seen, split=True)
    split_records = split[2]
    if b":\t" in data or b":\r" in data:
        # The field reader counts each field as `Name: value`, whatever the spacing was.
        records, split_records = [r[:3] + r[4:] for r in records], [r[:3] + r[4:] for r in split[2]]
    # The same answer and record, and the app gets the same fields, the same chain.
    assert (got, records) == (split[0], split_records)
    assert [by_name(r) for r in reads] == [by_name(r) for r in split[1]]
    assert got.startswith(b"HTTP/1.1 ")
    if reads:
        assert [v for n, v in reads[0][1] if n == b"x-forwarded-for"] == [xff.strip()]


async def test_a_trusted_request_id_is_used_whichever_way_the_head_is_read(
    make_proxy: ProxyFactory, raw_upstream, monkeypatch: pytest.MonkeyPatch
):
    proxy = await make_proxy(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    read_by_field = spy_on_the_field_reader(monkeypatch)
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    for _ in range(2):  # on a new upstream connection (an exchange), then pooled (plain)
        writer.write(ingress())
        assert (await asyncio.wait_for(read_response(reader), 5)).status == 200
    writer.close()
    await send(proxy, ingress(), split=True)  # and read field by field
    records = await proxy.wait_records(3)
    assert read_by_field == [b"/cart?id=7"]
    assert [r.request_id for r in records] == [INGRESS_ID.decode()] * 3
    for s in seen:
        assert [v for n, v in fields_of(s) if n == b"x-request-id"] == [INGRESS_ID]
    # Not a trusted proxy: its id is not taken, ours is sent.
    untrusted = await make_proxy()
    untrusted.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    seen.clear()
    await send(untrusted, ingress(), split=False)
    (record,) = await untrusted.wait_records(1)
    assert _REQUEST_ID.fullmatch(record.request_id.encode())
    assert [v for n, v in fields_of(seen[0]) if n == b"x-request-id"] == [
        record.request_id.encode()
    ]


async def test_rules_still_apply_to_requests_read_whole_or_not(proxy: Proxy, raw_upstream):
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    for split in (False, True):
        seen.clear()
        got = await send(proxy, REQUESTS["xff-from-untrusted"][0], split=split)
        assert got.startswith(b"HTTP/1.1 200")
        assert b"X-Forwarded-For: 127.0.0.1\r\n" in seen[0] and b"6.6.6.6" not in seen[0]
        seen.clear()
        await send(proxy, REQUESTS["connection-named"][0], split=split)
        assert b"X-Secret" not in seen[0] and b"X-Kept: 2\r\n" in seen[0]
        assert b"Connection" not in seen[0]
        seen.clear()
        got = await send(proxy, REQUESTS["duplicate-host"][0], split=split)
        assert got.startswith(b"HTTP/1.1 400") and seen == []
        got = await send(proxy, REQUESTS["control-byte-in-value"][0], split=split)
        assert got.startswith(b"HTTP/1.1 400") and seen == []
        got = await send(proxy, REQUESTS["pipelined"][0], split=split)
        assert got.count(b"HTTP/1.1 200 OK") == 2
        assert [s.split(b" ")[1] for s in seen] == [b"/p?q=1", b"/second"]


async def test_a_request_read_whole_reaches_the_app_with_the_fields_it_would_otherwise(
    proxy: Proxy, raw_upstream
):
    """Byte for byte, but for the request id, when the client wrote its fields as the
    field reader writes them (`Name: value`, Host first)."""
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    for data in (get(), BROWSER, get(b"X-Empty: \r\nx-lower: v\r\n")):
        got = []
        for split in (False, True):
            seen.clear()
            await send(proxy, data, split=split)
            got.append(normalized(seen[0]))
        assert got[0] == got[1]
        assert got[0].startswith(data[:-2])  # the client's fields as it wrote them
        assert got[0].count(b"\r\nX-Forwarded-") == 3


async def test_a_common_request_is_read_without_a_python_call_per_field(
    proxy: Proxy, raw_upstream, monkeypatch: pytest.MonkeyPatch
):
    read_by_field = spy_on_the_field_reader(monkeypatch)
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    for path in (b"/a", b"/b", b"/c"):  # the first on a new upstream connection, then pooled
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: shop.test\r\nAccept: */*\r\n\r\n")
        resp = await asyncio.wait_for(read_response(reader), 5)
        assert (resp.status, resp.body) == (200, b"ok")
    writer.write(b"GET /d HTTP/1.1\r\nAccept: */*\r\nHost: shop.test\r\n\r\n")
    assert (await asyncio.wait_for(read_response(reader), 5)).status == 200
    writer.close()
    assert read_by_field == [b"/d"]
    assert [s.split(b" ")[1] for s in seen] == [b"/a", b"/b", b"/c", b"/d"]


async def test_limits_hold_for_heads_read_whole(make_proxy: ProxyFactory, raw_upstream):
    proxy = await make_proxy(Limits(max_headers=3, max_head_bytes=200))
    seen: list[bytes] = []
    proxy.add_app("shop", ("shop.test",), await raw_upstream(await recording_app(seen)))
    three = get(b"X-1: a\r\nX-2: b\r\n")
    assert (await send(proxy, three, split=False)).startswith(b"HTTP/1.1 200")
    four = get(b"X-1: a\r\nX-2: b\r\nX-3: c\r\n")
    assert (await send(proxy, four, split=False)).startswith(b"HTTP/1.1 431")
    big = get(b"X-1: " + b"a" * 200 + b"\r\n")
    assert (await send(proxy, big, split=False)).startswith(b"HTTP/1.1 431")
    assert len(seen) == 1


# -- the reader itself -----------------------------------------------------------------


def read_by_field(data: bytes, trusted: bool = False) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """`data` through httptools with callbacks and `read_request_head`, as the client
    connection reads a head field by field: the head it would send upstream."""
    fields: list[tuple[bytes, bytes]] = []
    url = bytearray()

    class Callbacks:
        def on_url(self, part: bytes) -> None:
            url.extend(part)

        def on_header(self, name: bytes, value: bytes) -> None:
            fields.append((name, value))

    p = httptools.HttpRequestParser(Callbacks())
    p.feed_data(data)
    head = read_request_head(
        p.get_method(), bytes(url), fields, p.get_http_version(), p.should_keep_alive(),
        p.should_upgrade(),
    )  # fmt: skip
    return upstream_head(head, b"10.1.2.3", trusted, rid_of(head, trusted)), fields


def rid_of(head: RequestHead, trusted: bool) -> bytes:
    """The request id sent upstream, as the plain path and the exchange pick it."""
    return head.request_id if head.request_id and trusted else b"rid"


def fields_of(head: bytes) -> list[tuple[bytes, bytes]]:
    """The fields of a head as llhttp reads them, in order, names lowercased."""
    out: list[tuple[bytes, bytes]] = []

    class Callbacks:
        def on_header(self, name: bytes, value: bytes) -> None:
            out.append((name.lower(), value.strip()))

    httptools.HttpRequestParser(Callbacks()).feed_data(head)
    return out


CORPUS = [data for data, _ in REQUESTS.values()] + [c.data for c in CASES]


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("data", CORPUS + [data for data, _, _ in TRUSTED.values()])
def test_whatever_the_whole_head_reader_takes_the_field_reader_sends_on_the_same(
    data: bytes, trusted: bool
):
    head = raw_request_head(data, 65536, 100, trusted)
    if head is None:
        return
    try:
        slow, fields = read_by_field(data, trusted)
    except httptools.HttpParserError:
        # llhttp refuses it: so does the lean parser that checks every head read whole.
        with pytest.raises(httptools.HttpParserError):
            httptools.HttpRequestParser(object()).feed_data(data)
        return
    fast = upstream_head(head, b"10.1.2.3", trusted, rid_of(head, trusted))
    if trusted:
        assert by_name(as_read(fast)) == by_name(as_read(slow))
    else:
        assert fields_of(fast) == fields_of(slow)
    assert fast.split(b"\r\n", 1)[0] == slow.split(b"\r\n", 1)[0]
    assert head.size == len(data) - 2
    assert (head.method, head.host, head.body, head.keep_alive, head.upgrade) == (
        data.split(b" ")[0], fields[0][1].strip(), 0, True, None,
    )  # fmt: skip


def test_the_requests_marked_whole_are_exactly_those_read_whole():
    for name, (data, whole) in REQUESTS.items():
        assert (raw_request_head(data, 65536, 100, False) is not None) == whole, name
    for name, (data, whole, _) in TRUSTED.items():
        assert (raw_request_head(data, 65536, 100, True) is not None) == whole, name


@pytest.mark.parametrize(
    "name", sorted((_SPECIAL - {b"host", b"accept"}) | {b"content_length", b"transfer_encoding"})
)
def test_every_field_a_rule_looks_at_is_left_to_the_field_reader_or_dropped_as_it_drops(
    name: bytes,
):
    for trusted in (False, True):
        dropped = name in _ONLY_DROPPED or (name in _CLAIMED and not trusted)
        for spelling in (name, name.upper(), name.title()):
            data = get(spelling + b": x\r\n")
            head = raw_request_head(data, 65536, 100, trusted)
            if dropped:
                assert head is not None and head.raw == get()[:-2]
            elif name in RELAYED:  # from a trusted proxy: relayed as it came
                assert head is not None and head.raw == data[:-2]
            elif name in _CLAIMED:  # from a trusted proxy: taken as the field reader takes it
                assert isinstance(head, ClaimedRawHead) and head.raw == get()[:-2]
                by_field = read_request_head(b"GET", b"/", fields_of(data), "1.1", True, False)
                claims = (head.xff, head.xfp, head.xfh, head.request_id)
                assert claims == (by_field.xff, by_field.xfp, by_field.xfh, by_field.request_id)
                assert claims.count(b"x") == 1
            else:
                assert head is None
        # Fields whose names only contain one are not looked at.
        for other in (b"X-" + name, name + b"-x", name + b"x"):
            head = raw_request_head(get(other + b": x\r\n"), 65536, 100, trusted)
            assert head is not None and other in head.raw


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (b"", False),
        (b"Accept: text/html\r\n", True),
        (b"accept: TEXT/HTML;q=0.9\r\n", True),
        (b"Accept: */*\r\n", False),
        (b"Accept: text/html\r\nAccept: image/png\r\n", False),  # the last one counts
        (b"X-Accept: text/html\r\n", False),
    ],
)
def test_a_head_read_whole_knows_whether_html_is_wanted_as_the_field_reader(accept, html):
    head = raw_request_head(get(accept), 65536, 100, False)
    assert isinstance(head, RawHead)
    assert head.accept_html is html
    by_field = read_request_head(b"GET", b"/", fields_of(get(accept)), "1.1", True, False)
    assert by_field.accept_html is html


# Random heads built from the pieces that decide which reader takes them: names a rule
# looks at (in any case, with `_` spellings), names that only contain one, Host anywhere
# and more than once, Connection values, odd whitespace and bytes, several request lines.
PLAIN = [b"x-a", b"x-host", b"hosts", b"connection-x", b"x-te", b"accept-language", b"cookie"]
NAMES = st.sampled_from(
    PLAIN * 20 + sorted(_SPECIAL | {b"content_length", b"transfer_encoding"})
).flatmap(lambda n: st.sampled_from([n, n.upper(), n.title()]))
VALUES = st.sampled_from(
    [b"1", b"keep-alive", b"Keep-Alive", b"close", b"keep-alive, x-a", b"shop.test",
     b"chunked", b"text/html", b"", b" spaced ", b"a\x01b", b"caf\xc3\xa9", b"6.6.6.6"]
)  # fmt: skip
SEPARATORS = st.sampled_from([b": ", b": ", b": ", b":", b":\t", b" : ", b":  "])
LINES = st.one_of(
    st.sampled_from([b"GET / HTTP/1.1", b"POST /p?q HTTP/1.1", b"DELETE /x/1 HTTP/1.1"]),
    st.sampled_from(
        [b"HEAD / HTTP/1.1", b"GET / HTTP/1.0", b"get / HTTP/1.1", b"GET  / HTTP/1.1",
         b"GET http://shop.test/ HTTP/1.1", b"CONNECT shop.test:443 HTTP/1.1",
         b"OPTIONS * HTTP/1.1", b"GET /a b HTTP/1.1"]
    ),
)  # fmt: skip
CONNECTIONS = st.sampled_from(
    [b"Connection: keep-alive", b"connection:Keep-Alive", b"Connection: keep-alive ",
     b"Connection: keep-alive, x-a", b"Connection: close", b"Connection: x-a",
     b"Keep-Alive: timeout=5", b"TE: trailers", b"trailer:", b"Proxy-Connection: close",
     b"X-Forwarded-For: 6.6.6.6", b"x-forwarded-host:evil.test", b"X-Request-Id: mine",
     b"Forwarded: for=6.6.6.6", b"X-Real-IP: 6.6.6.6", b"X-Forwarded-Proto: https",
     b"X-Forwarded-For:\t 6.6.6.6 ,7.7.7.7 ", b"x-forwarded-for:", b"X-Request-ID:  r-1\t",
     b"X-Forwarded-Host: a.test", b"x-forwarded-port: 443"]
)  # fmt: skip
HOSTS = st.sampled_from([b"Host: shop.test", b"host:Shop.Test:80", b"HOST:\tx.test", b"Host: a b"])


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    fields = [
        draw(NAMES) + draw(SEPARATORS) + draw(VALUES)
        for _ in range(draw(st.integers(0, 5)))
    ]
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2]))):
        fields.insert(draw(st.integers(0, len(fields))), draw(CONNECTIONS))
    for _ in range(draw(st.sampled_from([1, 1, 1, 1, 0, 2]))):
        fields.insert(draw(st.sampled_from([0, 0, 0, len(fields)])), draw(HOSTS))
    ending = draw(st.sampled_from([b"\r\n"] * 5 + [b"\n"]))
    return draw(LINES) + b"\r\n" + b"".join(f + ending for f in fields) + b"\r\n"


@settings(max_examples=1500, deadline=None)
@given(heads(), st.booleans())
def test_random_heads_the_whole_head_reader_takes_reach_the_app_as_by_field(
    data: bytes, trusted: bool
):
    head = raw_request_head(data, 65536, 100, trusted)
    if head is None:
        return
    try:
        lean_ok = httptools.HttpRequestParser(object()).feed_data(data) is None
    except httptools.HttpParserError:
        lean_ok = False
    try:
        slow, _ = read_by_field(data, trusted)
    except httptools.HttpParserError:
        assert not lean_ok  # llhttp refused it, so the lean parser does too: 400 either way
        return
    assert lean_ok
    fast = upstream_head(head, b"10.1.2.3", trusted, rid_of(head, trusted))
    if trusted:
        assert by_name(as_read(fast)) == by_name(as_read(slow))
    else:
        assert as_read(fast) == as_read(slow)

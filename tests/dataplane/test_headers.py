"""The header rules as pure functions: hop-by-hop set, request checks, response framing."""

from __future__ import annotations

import pytest

from wakeproxy.dataplane import errors
from wakeproxy.dataplane.answers import response_head
from wakeproxy.dataplane.headers import (
    CHUNKED,
    CLOSE,
    HOP_BY_HOP,
    LENGTH,
    NONE,
    RequestIds,
    read_request_head,
    upstream_head,
)
from wakeproxy.dataplane.waiting_page import render_waiting_page


def head(headers: list[tuple[bytes, bytes]], url: bytes = b"/", method: bytes = b"GET"):
    return read_request_head(method, url, [(b"Host", b"a.test"), *headers], "1.1", True, False)


def test_hop_by_hop_set_is_exactly_the_connection_scoped_headers():
    assert frozenset(
        {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
         b"transfer-encoding", b"upgrade"}
    ) == HOP_BY_HOP  # fmt: skip


def test_headers_named_in_connection_are_dropped_case_insensitively():
    h = head([(b"Connection", b"close, X-Drop"), (b"x-drop", b"1"), (b"X-Keep", b"2")])
    out = upstream_head(h, b"10.0.0.1", False, b"rid")
    assert b"x-drop" not in out.lower()
    assert b"X-Keep: 2\r\n" in out
    assert b"connection" not in out.lower()


def test_upstream_head_is_origin_form_http11_with_forwarded_headers():
    h = read_request_head(
        b"GET", b"http://b.test/x?y", [(b"Host", b"a.test"), (b"X-Forwarded-For", b"1.1.1.1")],
        "1.0", True, False,
    )  # fmt: skip
    out = upstream_head(h, b"10.0.0.1", False, b"rid-1")
    assert out.startswith(b"GET /x?y HTTP/1.1\r\nHost: b.test\r\n")
    assert b"X-Forwarded-For: 10.0.0.1\r\n" in out
    assert b"X-Forwarded-Host: b.test\r\n" in out
    assert b"X-Request-Id: rid-1\r\n" in out
    assert out.endswith(b"\r\n\r\n") and out.count(b"\r\n\r\n") == 1


def test_transfer_codings_before_chunked_are_kept():
    h = head([(b"Transfer-Encoding", b"gzip, chunked")], method=b"POST")
    assert h.body == CHUNKED
    assert b"Transfer-Encoding: gzip, chunked\r\n" in upstream_head(h, b"p", False, b"r")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"3")],
        [(b"Content-Length", b"3"), (b"Content-Length", b"4")],
        [(b"Transfer-Encoding", b"chunked, gzip")],
        [(b"Transfer-Encoding", b"chunked, chunked")],
        [(b"Host", b"b.test")],
    ],
)
def test_ambiguous_requests_are_bad(headers):
    with pytest.raises(errors.BadRequest):
        head(headers, method=b"POST")


def test_upgrade_is_forwarded_only_for_a_real_upgrade_request():
    h = read_request_head(
        b"GET", b"/ws", [(b"Host", b"a"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
        "1.1", True, True,
    )  # fmt: skip
    out = upstream_head(h, b"p", False, b"r")
    assert b"Connection: upgrade\r\nUpgrade: websocket\r\n" in out
    plain = head([(b"Upgrade", b"websocket")])
    assert b"upgrade" not in upstream_head(plain, b"p", False, b"r").lower()


@pytest.mark.parametrize(
    ("headers", "kw", "framing", "keep", "has"),
    [
        ([(b"Content-Length", b"5")], {}, LENGTH, True, b"Content-Length: 5\r\n"),
        ([(b"Transfer-Encoding", b"chunked")], {}, CHUNKED, True, b"Transfer-Encoding: chunked"),
        ([(b"Transfer-Encoding", b"chunked")], {"http10": True}, CLOSE, False, b"close"),
        ([], {}, CLOSE, False, b"Connection: close\r\n"),
        ([(b"Content-Length", b"9")], {"no_body": True}, NONE, True, b"Content-Length: 9\r\n"),
        ([(b"Content-Length", b"5")], {"http10": True}, LENGTH, True, b"Connection: keep-alive"),
        ([(b"Content-Length", b"5")], {"keep_alive": False}, LENGTH, False, b"Connection: close"),
    ],
)  # fmt: skip
def test_response_framing(headers, kw, framing, keep, has):
    args = {"no_body": False, "http10": False, "keep_alive": True, **kw}
    data, got_framing, got_keep = response_head(200, b"OK", headers, **args)
    assert (got_framing, got_keep) == (framing, keep)
    assert has in data
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n")


def test_response_drops_hop_by_hop_and_connection_named_headers():
    data, _, _ = response_head(
        200, b"OK",
        [(b"Content-Length", b"0"), (b"Connection", b"X-Priv"), (b"X-Priv", b"1"),
         (b"Keep-Alive", b"timeout=5"), (b"X-Pub", b"2")],
        no_body=False, http10=False, keep_alive=True,
    )  # fmt: skip
    assert b"X-Pub: 2" in data
    assert b"X-Priv" not in data and b"Keep-Alive" not in data and b"Connection" not in data


def test_every_error_type_has_a_status_and_renders_plainly():
    kinds = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.ProxyError) and c is not errors.ProxyError
    ]
    assert set(kinds) == set(errors.STATUS)
    data = errors.render(
        errors.WakeTimeout("app 'shop' did not wake within 60s", app="shop", retry_after=5),
        close=True, request_id=b"r-1",
    )  # fmt: skip
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert b"Retry-After: 5" in head and b"Connection: close" in head
    assert b"X-Request-Id: r-1" in head
    assert body == b"504 Gateway Timeout: app 'shop' did not wake within 60s\n"
    assert b"Content-Length: %d\r\n" % len(body) in head


def test_waiting_page_escapes_what_it_shows():
    data = render_waiting_page("<app>", "<script>x</script>", close=False)
    assert b"<script>" not in data and b"&lt;app&gt;" in data
    assert b"Cache-Control: no-store" in data and data.startswith(b"HTTP/1.1 503")


def test_request_ids_are_unique():
    ids = RequestIds()
    other = RequestIds()
    seen = {ids.next() for _ in range(1000)} | {other.next() for _ in range(1000)}
    assert len(seen) == 2000

"""Raw requests a hostile or broken client might send, each with the answer it must get.

`status` is what the client must see first; `reaches` is the path the app must receive
(and `body` the body it must get with it), or None when nothing may reach the app. The
app serves `shop.test` and the IDN host `xn--bcher-kva.test` (bücher.test); `CANARY` is
replaced by the address (host:port) of a listener that must never be connected to, and
`CANARY_PORT` by its port alone.
"""

from __future__ import annotations

from dataclasses import dataclass

CANARY = b"{canary}"
CANARY_PORT = b"{canary_port}"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    status: int
    reaches: str | None = None
    body: bytes = b""


def get(host: bytes, target: bytes = b"/", extra: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


def post(headers: bytes, body: bytes) -> bytes:
    return b"POST /p HTTP/1.1\r\nHost: shop.test\r\n" + headers + b"\r\n" + body


CASES: tuple[Case, ...] = (
    # -- request lines
    Case("not-http", b"GARBAGE\r\n\r\n", 400),
    Case("method-only", b"GET\r\n\r\n", 400),
    Case("no-version", b"GET /\r\nHost: shop.test\r\n\r\n", 400),
    Case("extra-word", b"GET / HTTP/1.1 x\r\nHost: shop.test\r\n\r\n", 400),
    Case("leading-space", b" GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("lowercase-method", b"get / HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("unknown-method", b"FROB / HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    Case("http-1.2", b"GET / HTTP/1.2\r\nHost: shop.test\r\n\r\n", 400),
    # No version and no more bytes: an incomplete head, cut off at client_head_timeout.
    Case("http-0.9", b"GET /\r\n", 408),
    Case("bare-lf", b"GET / HTTP/1.1\nHost: shop.test\n\n", 400),
    Case("bare-cr", b"GET / HTTP/1.1\rHost: shop.test\r\r", 400),
    Case("nul-in-target", b"GET /a\x00b HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("del-in-target", b"GET /\x7f HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("utf8-in-target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("space-in-target", b"GET /a b HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400),
    Case("relative-target", get(b"shop.test", b"nowhere"), 400),
    Case("asterisk-get", get(b"shop.test", b"*"), 400),
    Case("ftp-target", get(b"shop.test", b"ftp://shop.test/"), 400),
    # A doubled space is read on word boundaries (RFC 9112 §3) and sent on as one.
    Case("double-space", b"GET  /ds HTTP/1.1\r\nHost: shop.test\r\n\r\n", 200, "/ds"),
    # -- header bytes
    Case("space-before-colon", get(b"shop.test", extra=b"X-A : b\r\n"), 400),
    Case("no-colon", get(b"shop.test", extra=b"X-A\r\n"), 400),
    Case("empty-name", get(b"shop.test", extra=b": v\r\n"), 400),
    Case("token-char-in-name", get(b"shop.test", extra=b"X(A): b\r\n"), 400),
    Case("del-in-name", get(b"shop.test", extra=b"X\x7fA: b\r\n"), 400),
    Case("nul-in-value", get(b"shop.test", extra=b"X-A: a\x00b\r\n"), 400),
    Case("control-in-value", get(b"shop.test", extra=b"X-A: a\x01b\r\n"), 400),
    Case("obs-fold", get(b"shop.test", extra=b"X-A: a\r\n folded\r\n"), 400),
    Case("obs-text-value", get(b"shop.test", b"/ot", b"X-A: caf\xc3\xa9\r\n"), 200, "/ot"),
    # -- message length: the smuggling surface
    Case("cl-and-te", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                           b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.test\r\n\r\n"), 400),
    Case("te-and-cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                           b"0\r\n\r\n"), 400),
    Case("cl-differs", post(b"Content-Length: 3\r\nContent-Length: 5\r\n", b"abcde"), 400),
    Case("cl-same-twice", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"abcde"), 400),
    Case("cl-list", post(b"Content-Length: 5, 5\r\n", b"abcde"), 400),
    Case("cl-plus", post(b"Content-Length: +5\r\n", b"abcde"), 400),
    Case("cl-negative", post(b"Content-Length: -1\r\n", b"abcde"), 400),
    Case("cl-hex", post(b"Content-Length: 0x5\r\n", b"abcde"), 400),
    Case("cl-overflow", post(b"Content-Length: 99999999999999999999999\r\n", b"x"), 400),
    Case("te-gzip", post(b"Transfer-Encoding: gzip\r\n", b"abc"), 400),
    Case("te-identity", post(b"Transfer-Encoding: identity\r\n", b"abc"), 400),
    Case("te-xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), 400),
    Case("te-chunked-twice", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
         400),
    Case("te-chunked-then-gzip", post(b"Transfer-Encoding: chunked\r\n"
                                      b"Transfer-Encoding: gzip\r\n", b"0\r\n\r\n"), 400),
    Case("te-underscore", post(b"Transfer_Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
    Case("cl-underscore", post(b"Content_Length: 5\r\n", b"abcde"), 400),
    Case("te-http10", b"POST /p HTTP/1.0\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n"
                      b"\r\n0\r\n\r\n", 400),
    Case("chunk-size-overflow", post(b"Transfer-Encoding: chunked\r\n",
                                     b"ffffffffffffffffffff\r\n"), 400),
    Case("chunk-size-junk", post(b"Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n"), 400),
    Case("chunk-bare-lf", post(b"Transfer-Encoding: chunked\r\n", b"5\nabcde\n0\n\n"), 400),
    Case("chunk-ext-control", post(b"Transfer-Encoding: chunked\r\n",
                                   b"5;a=\x01\r\nabcde\r\n0\r\n\r\n"), 400),
    # Chunked bodies are re-framed with our own chunk sizes: extensions never reach the app.
    Case("chunk-extension", post(b"Transfer-Encoding: chunked\r\n",
                                 b"5;name=v\r\nabcde\r\n0\r\n\r\n"), 200, "/p", b"abcde"),
    # `Connection` may not strip the length of a body that still goes on to the app.
    Case("connection-names-content-length",
         post(b"Content-Length: 5\r\nConnection: Content-Length\r\n", b"abcde"), 200, "/p",
         b"abcde"),
    Case("connection-names-host", get(b"shop.test", b"/cn", b"Connection: host\r\n"), 200,
         "/cn"),
    # -- oversized heads (the proxy's limits: 8 KiB head, 20 fields in these tests)
    Case("long-target", get(b"shop.test", b"/" + b"a" * 9000), 414),
    Case("long-header", get(b"shop.test", extra=b"X-A: " + b"v" * 9000 + b"\r\n"), 431),
    Case("many-headers", get(b"shop.test", extra=b"".join(
        b"X-%d: v\r\n" % i for i in range(30))), 431),
    # -- absolute-form and CONNECT: never a way to reach another host
    Case("connect", b"CONNECT " + CANARY + b" HTTP/1.1\r\nHost: " + CANARY + b"\r\n\r\n", 405),
    Case("connect-known-host", b"CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
         405),
    Case("absolute-to-canary", get(b"shop.test", b"http://" + CANARY + b"/x"), 404),
    Case("absolute-userinfo", get(b"shop.test", b"http://u:p@shop.test/x"), 400),
    Case("absolute-canary-userinfo", get(b"shop.test", b"http://shop.test@" + CANARY + b"/"),
         400),
    Case("absolute-wins", get(b"other.test", b"http://shop.test/aw?q=1"), 200, "/aw?q=1"),
    Case("absolute-https", get(b"other.test", b"https://shop.test/hs"), 200, "/hs"),
    Case("absolute-no-path", get(b"other.test", b"http://shop.test"), 200, "/"),
    Case("absolute-known-host-canary-port",
         get(b"other.test", b"http://shop.test:" + CANARY_PORT + b"/kp"), 200, "/kp"),
    # -- Host
    Case("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    Case("empty-host", get(b""), 400),
    Case("two-hosts", get(b"shop.test", extra=b"Host: other.test\r\n"), 400),
    Case("http10-no-host", b"GET / HTTP/1.0\r\n\r\n", 404),
    Case("host-canary", get(CANARY), 404),
    Case("host-loopback", get(b"127.0.0.1"), 404),
    Case("host-localhost", get(b"localhost"), 404),
    Case("host-ipv6", get(b"[::1]"), 404),
    Case("host-ipv6-port", get(b"[::1]:80"), 404),
    Case("host-ipv6-unclosed", get(b"[::1"), 400),
    Case("host-ipv6-bare", get(b"::1"), 400),
    Case("host-ipv6-zone", get(b"[fe80::1%25eth0]"), 400),
    Case("host-path", get(b"shop.test/evil"), 400),
    Case("host-userinfo", get(b"user@shop.test"), 400),
    Case("host-at-canary", get(b"shop.test@" + CANARY), 400),
    Case("host-comma-list", get(b"shop.test, other.test"), 400),
    Case("host-space", get(b"shop.test evil"), 400),
    Case("host-bad-port", get(b"shop.test:abc"), 400),
    Case("host-long-port", get(b"shop.test:123456"), 400),
    Case("host-wildcard", get(b"*.shop.test"), 400),
    Case("host-utf8-idn", get("bücher.test".encode()), 400),
    Case("host-percent", get(b"shop%2etest"), 400),
    Case("host-unknown", get(b"other.test"), 404),
    Case("host-leading-dot", get(b".shop.test"), 404),
    Case("host-double-dot", get(b"shop..test"), 404),
    Case("host-uppercase", get(b"SHOP.TEST", b"/up"), 200, "/up"),
    Case("host-trailing-dot", get(b"shop.test.", b"/td"), 200, "/td"),
    Case("host-port", get(b"shop.test:8080", b"/pt"), 200, "/pt"),
    Case("host-empty-port", get(b"shop.test:", b"/ep"), 200, "/ep"),
    Case("host-punycode", get(b"xn--bcher-kva.test", b"/idn"), 200, "/idn"),
    Case("host-punycode-upper", get(b"XN--BCHER-KVA.TEST.", b"/IDN"), 200, "/IDN"),
    # X-Forwarded-Host is never used for routing.
    Case("xfh-to-shop", get(b"other.test", extra=b"X-Forwarded-Host: shop.test\r\n"), 404),
    Case("xfh-to-canary", get(b"shop.test", b"/xfh", b"X-Forwarded-Host: " + CANARY + b"\r\n"),
         200, "/xfh"),
)


def with_canary(data: bytes, port: int) -> bytes:
    return data.replace(CANARY, b"127.0.0.1:%d" % port).replace(CANARY_PORT, b"%d" % port)

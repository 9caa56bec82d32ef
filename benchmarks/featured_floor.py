"""The featured floor: floor_proxy.py plus the work wakeproxy does for every common request
(keep-alive GET, no body, awake app), written flat and as cheaply as we could. A yardstick.

- route by Host (lowercased, port stripped, memoized per raw value); an unknown host gets a
  404 from here and the connection stays;
- request head: hop-by-hop fields (and those named in Connection) and the peer's own
  X-Forwarded-For/-Proto/-Host and X-Request-Id dropped (no peer is trusted), ours added;
- per app: in flight, requests, last access; a count per status, a duration histogram;
- answer: hop-by-hop lines cut from the relayed head, its end from Content-Length (or a
  204/304/HEAD); chunked bodies re-encoded from a parser that decides their end; bytes
  after an answer never relayed (that upstream connection is closed, not pooled);
- access log: one JSON line per request in wakeproxy's format, one write per 128 lines or
  0.25 s; one deadline per connection, checked by a 1-second tick (no timer per request).
Not handled: 1xx answers, upgrades, chunked request bodies, HTTP/1.0 clients, absolute-form
targets, retries, holding, trusted proxies. Heads are read whole and looked at as bytes
(regexes over the lowercased head); the parsers only check syntax (llhttp is strict: CRLF,
no obs-fold), with callbacks only for a chunked answer. FEATURED_OFF=log,stats,rules,cut,
deadlines turns features off, to measure what each costs.
usage: python featured_floor.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT"""
import asyncio
import itertools
import json
import os
import re
import sys
import time
from bisect import bisect_left

import httptools
import uvloop

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18083
UP_HOST = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
UP_PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 18080
OFF = os.environ.get("FEATURED_OFF", "").split(",")
LOG, STATS, RULES, CUT, DEADLINES = (
    f not in OFF for f in ("log", "stats", "rules", "cut", "deadlines"))
UPSTREAM = json.dumps(f"{UP_HOST}:{UP_PORT}")
IDLE_TIMEOUT = RESPONSE_TIMEOUT = 60.0
MAX_HEAD = 65536
BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
          1.0, 2.5, 5.0, 10.0)
HOP = rb"connection|keep-alive|proxy-connection|te|trailer|upgrade"
# The common request: its line, then Host first (as clients send it); nothing else is looked at
# unless REQUEST_FIELDS finds a field a rule needs in the lowercased head.
HEAD = re.compile(rb"([A-Z]+) (/[^ ]*) HTTP/1\.1\r\n[Hh][Oo][Ss][Tt]:[ \t]*([^\s]+)[ \t]*\r\n")
REQUEST_FIELDS = re.compile(rb"\r\n(host|transfer-encoding|content-length|" + HOP
                            + rb"|x-forwarded-for|x-forwarded-proto|x-forwarded-host|x-request-id)"
                            rb":[ \t]*([^\r\n]*)")
RESPONSE_FIELDS = re.compile(rb"(\r\n(transfer-encoding|content-length|" + HOP
                             + rb"):[ \t]*([^\r\n]*))")  # (line, name, value)
NOT_NAMES = {b"", b"close", b"keep-alive", b"upgrade", b"content-length", b"host",
             b"transfer-encoding"}
NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
             b"no such app\n")
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
NOT_IMPLEMENTED = b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
TIMEOUT = b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
CHECK = object()  # a parser's protocol with no callbacks: llhttp only checks the bytes
monotonic, escape = time.monotonic, json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
next_id = map((os.urandom(5).hex() + "-%x").encode().__mod__, itertools.count(1)).__next__
log_out = sys.stdout.buffer  # where access lines go (a probe may swap it)
pool = []  # idle upstream connections (LIFO)
conns = set()  # client connections, for the deadline tick
records = []  # access records waiting for the next write
flush_due = False


class App:
    def __init__(self, name):
        self.name, self.json = name, json.dumps(name or None)
        self.in_flight = self.requests = 0
        self.last_access, self.by_code, self.hist_sum = 0.0, {}, 0.0
        self.hist = [0] * (len(BOUNDS) + 1)


APPS = {b"bench.test": App("bench")}
NO_APP = App("")  # the books of unknown hosts
routes = {}  # raw Host value -> (app, the line's text from "app" to "method":"); bounded


def route(raw):
    host = raw.strip().lower()
    colon = host.rfind(b":")
    if colon > host.rfind(b"]"):
        host = host[:colon]
    host = host.rstrip(b".")
    app = APPS.get(host, NO_APP)
    if len(routes) > 4096:
        routes.clear()
    text = f'"app":{app.json},"host":{escape(host.decode("latin-1"))},"method":"'
    hit = routes[raw] = (app, text)
    return hit


def cut_lines(data, low, names):
    """`data` without its field lines named in `names` (lowercase; `low` is `data` lowercased)."""
    spans = []
    for name in names:
        needle = b"\r\n" + name + b":"
        i = low.find(needle)
        while i >= 0:
            j = low.find(b"\r\n", i + 2)
            spans.append((i, j))
            i = low.find(needle, j)
    out, pos = [], 0
    for i, j in sorted(spans):
        out.append(data[pos:i])
        pos = j
    out.append(data[pos:])
    return b"".join(out)


def cut_found(data, low, lines):
    """`data` without `lines`, as found in `low` (`data` lowercased), in order."""
    out, pos = [], 0
    for line in lines:
        i = low.find(line, pos)
        out.append(data[pos:i])
        pos = i + len(line)
    out.append(data[pos:])
    return b"".join(out)


def connection_tokens(value, names):
    """Adds the fields a Connection value names to `names`; whether it says close."""
    close = False
    for t in value.split(b","):
        t = t.strip()
        close = close or t == b"close"
        if t not in NOT_NAMES:
            names.append(t)
    return close


class Upstream(asyncio.Protocol):
    client = parser = chunks = None

    def connection_made(self, transport):
        self.transport = transport

    def start(self, client, data, head_only):
        self.client, client.up = client, self
        self.status, self.buf, self.out, self.head_only, self.dirty = 0, b"", 0, head_only, False
        if self.parser is None:  # kept for the connection's life, fed whole answers only
            self.parser = httptools.HttpResponseParser(CHECK)
        self.transport.resume_reading()
        self.transport.write(data)

    def data_received(self, data):
        c = self.client
        if c is None:  # unsolicited bytes on an idle connection
            self.transport.close()
            return
        try:
            if self.status == 0:
                self.head(c, self.buf + data if self.buf else data)
            elif self.chunks is not None:
                self.chunks.feed(data)
            elif self.left < 0:  # delimited by the upstream closing
                self.out += len(data)
                c.transport.write(data)
            else:
                left = self.left
                if len(data) > left:  # bytes after the answer: not relayed, connection not reused
                    data, self.dirty = data[:left], True
                self.left = left - len(data)
                self.parser.feed_data(data)
                self.out += len(data)
                c.transport.write(data)
                if self.left == 0:
                    self.finish(c)
        except (httptools.HttpParserError, ValueError):
            self.failed(c)

    def head(self, c, data):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD:
                raise ValueError
            self.buf = data
            return
        self.buf = b""
        status = int(data[9:12])
        if status < 200 or data[:9] not in (b"HTTP/1.1 ", b"HTTP/1.0 "):  # no interim answers
            raise ValueError
        low = data[:end + 2].lower()
        length = te = None
        cut, named = [], []  # hop-by-hop lines; fields a Connection names
        for line, name, value in RESPONSE_FIELDS.findall(low):
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                te = value
            else:
                cut.append(line)
                if name == b"connection" and value != b"keep-alive":
                    self.dirty = connection_tokens(value, named) or self.dirty
        if data[5:8] != b"1.1":  # an HTTP/1.0 app closes unless told otherwise: not pooled
            self.dirty = True
        if self.head_only or status == 204 or status == 304:
            length = 0
        elif te is not None:  # the parser decides where a chunked body ends
            self.parser = None
            if te.rstrip().endswith(b"chunked"):
                self.status, self.left = status, 0
                head = self.cut(data[:end + 4], low, cut, named) if cut and CUT else data[:end + 4]
                self.out += len(head)
                c.transport.write(head)
                self.chunks = Chunks(self, c)
                self.chunks.feed(data)
                return
            length = None  # another final coding: delimited by close
        if length is None:  # delimited by close: relayed until the upstream closes
            length, self.dirty, c.keep = -1, True, False
            answer = data
        else:
            answer = data[:end + 4 + length]
            self.dirty = self.dirty or len(data) > len(answer)
        if self.parser is not None:
            self.parser.feed_data(answer)
        if self.head_only:  # its parser would wait for a body that never comes
            self.parser = None
        if cut and CUT:
            answer = self.cut(answer, low, cut, named)
        self.status = status
        self.left = max(length - (len(data) - end - 4), 0) if length >= 0 else -1
        self.out += len(answer)
        c.transport.write(answer)
        if self.left == 0:
            self.finish(c)

    @staticmethod
    def cut(data, low, lines, named):
        data = cut_found(data, low, lines)
        return cut_lines(data, data.lower(), named) if named else data

    def finish(self, c):
        self.client = c.up = self.chunks = None
        if self.dirty or self.transport.is_closing():
            self.parser = None
            self.transport.close()
        else:
            pool.append(self)
        c.done(self.status, self.out, None)

    def failed(self, c):
        self.client = c.up = self.parser = self.chunks = None
        self.transport.close()
        c.fail(BAD_GATEWAY if self.status == 0 else b"", 502, "upstream sent an invalid response")

    def connection_lost(self, exc):
        if self in pool:
            pool.remove(self)
        c = self.client
        if c is not None:
            if self.status and self.left < 0:  # the end of a close-delimited answer
                self.finish(c)
            else:
                self.failed(c)


class Chunks:
    """A chunked answer's body, re-encoded chunk by chunk by a parser of its own that is fed
    the answer from its first byte and decides its end; what follows the end is dropped."""

    def __init__(self, up, c):
        self.up, self.c, self.begun, self.ended = up, c, 0, False
        self.parser = httptools.HttpResponseParser(self)

    def feed(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if not self.ended:
                raise
            self.up.dirty = True  # garbage after the end
        if self.ended:
            self.up.finish(self.c)

    def on_message_begin(self):
        self.begun += 1
        if self.begun > 1:  # bytes after the end: the connection is not reused
            self.up.dirty = True

    def on_body(self, body):
        if not self.ended:
            self.up.out += len(body) + 6
            self.c.transport.write(b"%x\r\n%s\r\n" % (len(body), body))

    def on_message_complete(self):
        if not self.ended:
            self.ended = True
            self.up.out += 5
            self.c.transport.write(b"0\r\n\r\n")


class Client(asyncio.Protocol):
    up = req = None

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.peer_bytes, self.peer_json = self.peer.encode(), escape(self.peer)
        self.check = httptools.HttpRequestParser(CHECK)
        self.queue, self.busy, self.closed, self.keep, self.buf = [], False, False, True, b""
        self.deadline = monotonic() + IDLE_TIMEOUT
        conns.add(self)

    def data_received(self, data):
        if self.buf:
            data, self.buf = self.buf + data, b""
        while data and self.keep:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD:
                    return self.refuse(BAD_REQUEST)
                self.buf = data
                return
            size = end + 4
            low = data.lower() if size == len(data) else data[:size].lower()
            m = HEAD.match(data)
            if m is not None and (not RULES or REQUEST_FIELDS.search(low, m.end() - 2) is None):
                method, target, host = m.groups()
                raw, keep = data[:end + 2], True
            else:  # a field a rule needs, or Host not first
                got = self.general(data, low, end)
                if got is None:
                    return
                method, target, host, raw, keep, size = got
            try:
                self.check.feed_data(data[:size] if size < len(data) else data)
            except httptools.HttpParserUpgrade:
                return self.refuse(NOT_IMPLEMENTED)  # upgrades are not handled
            except httptools.HttpParserError:
                return self.refuse(BAD_REQUEST)
            rid = next_id() if RULES or LOG else b""
            if RULES:
                head = b"".join((raw, b"X-Forwarded-For: ", self.peer_bytes,
                                 b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ", host,
                                 b"\r\nX-Request-Id: ", rid, b"\r\n\r\n", data[end + 4:size]))
            else:
                head = data[:size]
            req = (head, keep, routes.get(host) or route(host), method, target, rid, size - 2)
            data = data[size:]
            if self.busy or self.queue:
                self.queue.append(req)
            else:
                self.send(req)

    def general(self, data, low, end):
        """Any other head: its request line, Host, the fields rules drop; None if refused or
        its body is still coming."""
        line = data[:data.find(b"\r\n")].split(b" ")
        fields = REQUEST_FIELDS.findall(low)
        hosts = [v.strip() for n, v in fields if n == b"host"]
        if len(line) != 3 or line[2] != b"HTTP/1.1" or len(hosts) != 1:
            return self.refuse(BAD_REQUEST)  # not HTTP/1.1 (not handled), Host missing or repeated
        names, keep, size = [], True, end + 4
        for name, value in fields:
            if name == b"transfer-encoding":
                return self.refuse(NOT_IMPLEMENTED)  # chunked request bodies are not handled
            if name == b"content-length":
                size += int(value)
            elif name != b"host":
                names.append(name)
                keep = not (name == b"connection" and connection_tokens(value, names)) and keep
        if len(data) < size:  # the body is still coming
            self.buf = data
            return None
        raw = cut_lines(data[:end + 2], low, names) if RULES else data[:end + 2]
        return line[0], line[1], hosts[0], raw, keep, size

    def send(self, req):
        self.req = req
        app = req[2][0]
        now = self.started = monotonic()
        if STATS:
            app.in_flight += 1
            app.requests += 1
            app.last_access = now
        self.busy = True
        if app is NO_APP:
            self.transport.write(NOT_FOUND)
            return self.done(404, len(NOT_FOUND), "no app serves host")
        self.deadline = now + RESPONSE_TIMEOUT
        if pool:
            pool.pop().start(self, req[0], req[3] == b"HEAD")
        else:
            self.connecting = asyncio.ensure_future(self.connect(req))

    async def connect(self, req):
        try:
            _, up = await asyncio.get_running_loop().create_connection(Upstream, UP_HOST, UP_PORT)
        except OSError:
            return self.fail(BAD_GATEWAY, 502, "upstream refused the connection")
        if self.closed:
            up.transport.close()
        else:
            up.start(self, req[0], req[3] == b"HEAD")

    def done(self, status, out, reason):
        """The request in flight ended: its books and access record, then the next one."""
        global flush_due
        _, keep, (app, line), method, target, rid, size = self.req
        now = monotonic()
        if STATS:
            app.in_flight -= 1
            app.last_access = now
            app.by_code[status] = app.by_code.get(status, 0) + 1
            app.hist[bisect_left(BOUNDS, now - self.started)] += 1
            app.hist_sum += now - self.started
        if LOG:
            records.append((line, method, target, status, self.started, now, rid, self.peer_json,
                            UPSTREAM if app.name else "null", size, out, reason))
            if len(records) >= 128:
                write_log()
            elif not flush_due:
                flush_due = True
                asyncio.get_running_loop().call_later(0.25, write_log)
        self.busy, self.deadline = False, now + IDLE_TIMEOUT
        if not keep or (not self.keep and not self.queue):
            self.close()
        elif self.queue:
            self.send(self.queue.pop(0))

    def fail(self, answer, status, reason):
        """The request in flight failed: `answer` (if its head was not sent yet), then close."""
        up, self.up, self.keep = self.up, None, False
        if up is not None:  # the answer is abandoned: its connection cannot be reused
            up.client = None
            up.transport.close()
        if not self.closed:
            self.transport.write(answer)
        self.queue.clear()
        if self.busy:
            self.done(status, len(answer), reason)
        self.close()

    def refuse(self, answer):
        """A request not forwarded: answered after those before it, then the connection
        closes (this yardstick does not log these)."""
        self.keep = False
        if not self.busy and not self.queue:
            self.transport.write(answer)
            self.close()

    def close(self):
        self.closed = True
        self.transport.close()

    def pause_writing(self):  # backpressure: stop reading upstream while client is slow
        if self.up:
            self.up.transport.pause_reading()

    def resume_writing(self):
        if self.up:
            self.up.transport.resume_reading()

    def connection_lost(self, exc):
        self.closed = True
        conns.discard(self)
        if self.busy:
            self.fail(b"", 499, "client closed the connection")


stamps = {}  # whole second -> '{"timestamp":"…:SS.'
MS = [repr(i / 100) for i in range(10000)]  # what json writes for round(ms, 2), below 100 ms
US = [f"{i:03d}" for i in range(1000)]


def write_log():
    """The waiting records as JSON lines, in one write (wakeproxy's fields, order, numbers)."""
    global records, flush_due
    batch, records, flush_due = records, [], False
    if not batch:
        return
    offset, out = time.time() - monotonic(), []
    for line, method, path, status, started, end, rid, peer, up, size, sent, reason in batch:
        wall = end + offset
        second = int(wall)
        stamp = stamps.get(second) or stamps.setdefault(
            second, '{"timestamp":"' + time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
        us = int((wall - second) * 1e6)
        cents = round((end - started) * 1e5)
        out.append(f'{stamp}{US[us // 1000]}{US[us % 1000]}Z","level":"info","event":"request",'
                   f'{line}{method.decode()}","path":{escape(path.decode("latin-1"))},'
                   f'"status":{status},"duration_ms":'
                   f'{MS[cents] if cents < 10000 else round((end - started) * 1000.0, 2)},'
                   f'"request_id":"{rid.decode()}","client":{peer},"upstream":{up},'
                   f'"bytes_in":{size},"bytes_out":{sent},'
                   f'"reason":{"null" if reason is None else escape(reason)}}}\n')
    if len(stamps) > 4:
        stamps.clear()
    log_out.write("".join(out).encode())
    log_out.flush()


async def tick():
    while True:  # one pass a second over every connection: no timer per request
        await asyncio.sleep(1.0)
        now = monotonic()
        for c in [c for c in conns if c.deadline < now]:
            if c.busy:
                c.fail(TIMEOUT, 504, "response timeout")
            else:
                c.close()


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Client, "127.0.0.1", PORT, backlog=4096, reuse_address=True)
    ticking = loop.create_task(tick()) if DEADLINES else None
    async with server:
        await server.serve_forever()
    del ticking


if __name__ == "__main__":
    uvloop.run(main())

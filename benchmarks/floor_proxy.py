"""The floor: a minimal reverse proxy on uvloop + httptools, ~150 lines, for measurement only.

It forwards keep-alive GETs to one upstream and pumps the response bytes back; it has no
routing, no X-Forwarded-*, no HEAD/1xx/Upgrade handling, no retry, no logging. It shows what
one CPython process on this stack costs per request when the hot path is flat, so a full
proxy can be measured against it. Not a design to copy: a yardstick.
usage: python floor_proxy.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT"""
import asyncio
import sys

import httptools
import uvloop

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18083
UP_HOST = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
UP_PORT = int(sys.argv[3]) if len(sys.argv) > 3 else 18080
HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
       b"upgrade", b"transfer-encoding", b"content-length"}
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
pool = []  # idle upstream connections (LIFO)


class Upstream(asyncio.Protocol):
    client = None

    def connection_made(self, transport):
        self.transport = transport

    def start(self, client, data):
        self.client = client
        client.up = self
        self.parser = httptools.HttpResponseParser(self)
        self.transport.resume_reading()
        self.transport.write(data)

    def data_received(self, data):
        c = self.client
        if c is None:  # unsolicited bytes on an idle connection
            self.transport.close()
            return
        c.transport.write(data)  # pump raw bytes
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.client = None
            self.transport.close()
            c.transport.close()

    def on_message_complete(self):
        c, self.client = self.client, None
        c.up = None
        if self.parser.should_keep_alive() and not self.transport.is_closing():
            pool.append(self)
        else:
            self.transport.close()
        c.done()

    def connection_lost(self, exc):
        if self in pool:
            pool.remove(self)
        c, self.client = self.client, None
        if c is not None:  # died mid-response
            c.transport.close()


class Client(asyncio.Protocol):
    up = None

    def connection_made(self, transport):
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.queue, self.busy, self.closed = [], False, False

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def on_message_begin(self):
        self.url, self.headers, self.body = b"", [], []

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name, value))

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        p = self.parser
        out = [p.get_method(), b" ", self.url, b" HTTP/1.1\r\n"]
        for n, v in self.headers:
            if n.lower() not in HOP:
                out += (n, b": ", v, b"\r\n")
        body = b"".join(self.body)
        if body or p.get_method() in (b"POST", b"PUT", b"PATCH"):
            out.append(b"Content-Length: %d\r\n" % len(body))
        out += (b"\r\n", body)
        self.queue.append((b"".join(out), p.should_keep_alive()))
        self.pump()

    def pump(self):
        if self.busy or self.closed or not self.queue:
            return
        req, self.keep = self.queue.pop(0)
        self.busy = True
        if pool:
            pool.pop().start(self, req)
        else:
            self.connecting = asyncio.ensure_future(self.connect(req))

    async def connect(self, req):
        try:
            _, up = await asyncio.get_running_loop().create_connection(Upstream, UP_HOST, UP_PORT)
        except OSError:
            self.transport.write(BAD_GATEWAY)
            self.transport.close()
            return
        up.start(self, req)

    def done(self):
        self.busy = False
        if not self.keep:
            self.transport.close()
        else:
            self.pump()

    def pause_writing(self):  # backpressure: stop reading upstream while client is slow
        if self.up:
            self.up.transport.pause_reading()

    def resume_writing(self):
        if self.up:
            self.up.transport.resume_reading()

    def connection_lost(self, exc):
        self.closed = True


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Client, "127.0.0.1", PORT, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())

"""The raw byte relay after a `101 Switching Protocols` (WebSocket and other upgrades).

Owns both connections once the upgrade is agreed: bytes flow unchanged each way, each
side's write buffer pausing the other side's reading, until either side closes or no
byte has moved for `tunnel_idle_timeout` (the client connection's deadline, pushed on
by every byte); then the other is closed after its pending bytes are written. It never
parses the bytes.
"""

from __future__ import annotations

import asyncio

from wakeproxy.dataplane.ports import Client, TunnelOwner, Upstream

# The client-side pause reason a tunnel uses (see ClientConnection.pause).
TUNNEL_BACKPRESSURE = 64


class Tunnel:
    __slots__ = ("_idle_timeout", "_loop", "client", "ended", "exchange", "upstream")

    def __init__(
        self, exchange: TunnelOwner, client: Client, upstream: Upstream,
        loop: asyncio.AbstractEventLoop, idle_timeout: float,
    ) -> None:  # fmt: skip
        self.exchange = exchange
        self.client = client
        self.upstream = upstream
        self.ended = False
        self._loop = loop
        self._idle_timeout = idle_timeout

    def from_client(self, data: bytes) -> None:
        if not self.upstream.closing:
            self.exchange.bytes_in += len(data)
            self.upstream.transport.write(data)
            self._moved()

    def from_upstream(self, data: bytes) -> None:
        if not self.client.closing:
            self.exchange.bytes_out += len(data)
            self.client.transport.write(data)
            self._moved()

    def _moved(self) -> None:
        self.client.deadline = self._loop.time() + self._idle_timeout

    def client_full(self, full: bool) -> None:
        if full:
            self.upstream.pause_reading()
        else:
            self.upstream.resume_reading()

    def upstream_full(self, full: bool) -> None:
        if full:
            self.client.pause(TUNNEL_BACKPRESSURE)
        else:
            self.client.resume(TUNNEL_BACKPRESSURE)

    def client_eof(self) -> None:
        """The client half-closed: pass it on; the app's own close ends the tunnel."""
        t = self.upstream.transport
        if not self.upstream.closing and t.can_write_eof():
            t.write_eof()
        else:
            self.close()

    def client_closed(self) -> None:
        self.upstream.close()
        self._end()

    def upstream_closed(self) -> None:
        self.client.close()
        self._end()

    def close(self) -> None:
        self.client.close()
        self.upstream.close()
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.exchange.tunnel_ended()

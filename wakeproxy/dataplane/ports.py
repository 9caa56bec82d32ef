"""What the data plane's parts use of each other, declared once (and nothing else).

The client connection, the exchange, the tunnel and the upstream connection call each
other both ways; each side names the other only through these Protocols, so the modules
import one way (server → client → plain → exchange → accounting → context → tunnel |
upstream | activator → ports), which the import-linter `layers` contract for
`wakeproxy.dataplane` keeps so.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Protocol

from wakeproxy.model.apps import Endpoint

# What a client connection's deadline means when it passes (checked by the server's tick).
IDLE, HEAD, RESPONSE, BODY, TUNNEL = 1, 2, 3, 4, 5


class TunnelEnd(Protocol):
    """A tunnel, as the two connections it joins see it."""

    def from_client(self, data: bytes) -> None: ...
    def from_upstream(self, data: bytes) -> None: ...
    def client_full(self, full: bool) -> None: ...
    def upstream_full(self, full: bool) -> None: ...
    def client_eof(self) -> None: ...
    def client_closed(self) -> None: ...
    def upstream_closed(self) -> None: ...
    def close(self) -> None: ...


class TunnelOwner(Protocol):
    """The exchange whose request was upgraded: it counts the bytes and logs the end."""

    bytes_in: int
    bytes_out: int

    def tunnel_ended(self) -> None: ...


class UpstreamUser(Protocol):
    """The exchange using an upstream connection, fed by it."""

    def upstream_data(self, data: bytes) -> None: ...
    def upstream_lost(self, up: Upstream, exc: Exception | None) -> None: ...
    def upstream_full(self, full: bool) -> None: ...


class Upstream(Protocol):
    """A connection to an app endpoint, lent by the pool to one exchange or tunnel."""

    transport: asyncio.Transport
    endpoint: Endpoint
    address: str  # "host:port", for the access log
    closing: bool
    exchange: UpstreamUser | None
    tunnel: TunnelEnd | None

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


class Client(Protocol):
    """A client connection, as its exchanges, its tunnel and the server's tick use it."""

    # Reasons reading from the client is paused (see ClientConnection).
    BACKPRESSURE: ClassVar[int]
    HELD: ClassVar[int]
    BUFFERED: ClassVar[int]
    UPGRADE: ClassVar[int]

    transport: asyncio.Transport
    peer: str
    peer_bytes: bytes
    trusted: bool
    closing: bool
    writing_paused: bool
    deadline: float
    deadline_kind: int  # IDLE, HEAD, RESPONSE, BODY, TUNNEL or 0 for none
    tunnel: TunnelEnd | None

    @property
    def busy(self) -> bool: ...

    def pause(self, reason: int) -> None: ...
    def resume(self, reason: int) -> None: ...
    def send(self, data: bytes) -> None: ...
    def close(self, *, linger: bool = False, cut: bool = False) -> None: ...
    def exchange_done(self, ex: object, keep_alive: bool) -> None: ...
    def handed_over(self, plain: object, ex: object) -> None: ...
    def await_response(self) -> None: ...
    def cancel_response_wait(self) -> None: ...
    def response_arrived(self) -> None: ...
    def tunnel_started(self) -> None: ...
    # The server's tick and drain.
    def deadline_passed(self) -> None: ...
    def send_checked(self, now: float) -> None: ...
    def shutdown(self) -> None: ...

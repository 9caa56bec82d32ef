"""Protection limits of the data plane, built from the `limits:` config section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Protection of the data plane. Every value is a config key under `limits:`."""

    max_head_bytes: int = 65536
    max_headers: int = 100
    max_connections: int = 10000
    connect_timeout: float = 5.0
    response_header_timeout: float = 60.0
    client_idle_timeout: float = 75.0
    client_head_timeout: float = 30.0
    # A pooled connection the app has closed can be picked for a request at the very
    # moment it closes, and a non-idempotent request on it fails for good. So the pool lets
    # go first: below the shortest keep-alive of common app servers (gunicorn 2 s, uvicorn
    # and Node 5 s), with room for the tick that sweeps it.
    upstream_idle_timeout: float = 1.5
    upstream_pool_size: int = 256
    # A request body that makes no progress for this long (while we are reading it) is
    # answered 408: a client trickling an upload must not hold a connection forever.
    client_body_timeout: float = 60.0
    # A response the client stops reading for this long closes the connection: a stalled
    # reader must not keep an upstream connection, and so its app, busy forever.
    client_send_timeout: float = 60.0
    # An upgraded connection (WebSocket) with no byte either way for this long is closed.
    tunnel_idle_timeout: float = 300.0

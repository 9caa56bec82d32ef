"""The data plane: a protocol-level HTTP/1.1 reverse proxy that holds requests while apps wake.

Data flow, per client connection::

    client bytes → ClientConnection (httptools request parser, pipelining, timeouts)
        → Exchange (route, count activity, hold or forward; one per request)
            → Activator (hold until the readiness board shows an endpoint, release in step)
            → UpstreamPool → UpstreamConnection (httptools response parser)
        ← Exchange (response head rewritten, body streamed with its own framing)
    ← client;  a 101 turns both connections into a Tunnel of raw bytes.

The data plane reads the route table and readiness board, writes the activity ledger,
request stats and wake demand, and never scales, probes or starts anything itself.
"""

from wakeproxy.dataplane.access import AccessRecord
from wakeproxy.dataplane.server import DataPlane

__all__ = ["AccessRecord", "DataPlane"]

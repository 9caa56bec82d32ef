"""The data plane: a protocol-level HTTP/1.1 reverse proxy that holds requests while apps wake.

Data flow, per client connection::

    client bytes → ClientConnection (httptools request parser, pipelining, timeouts)
        → PlainConnection (plain.py: a request with no body for an awake app, sent on a
          pooled connection whose own long-lived parser checks the answer, which goes to
          the client as it came but for hop-by-hop lines cut out), or
        → Exchange (route, count activity, hold or forward; one per request, or made from
          a plain request whose answer or fate needs more)
            → Activator (hold until the readiness board shows an endpoint, release in step)
            → UpstreamPool → UpstreamConnection (keep-alive, one retry of a dead one)
        ← Exchange again, fed by the upstream connection (its own httptools response
          parser; head rewritten, body streamed with its own framing)
    ← client;  a 101 turns both connections into a Tunnel of raw bytes.

The parts that call each other both ways (client connection, exchange, tunnel, upstream
connection) know each other only as the Protocols in `ports.py`; the modules import one
way: server → client → plain → exchange → accounting → context → tunnel | upstream |
activator → ports. `accounting.py` is what every request does at its start and end
(activity ledger, stats, access record), whichever path serves it.

Backpressure: a full client write buffer pauses reading the upstream, a full upstream
write buffer pauses reading the client; a held request's body stays in the kernel.
DataPlane (server.py) listens, ticks the deadlines and drains; errors.py holds every
answer we make ourselves and its status.

The data plane reads the route table and readiness board, writes the activity ledger,
request stats and wake demand, and never scales, probes or starts anything itself.
"""

from wakeproxy.dataplane.access import AccessRecord
from wakeproxy.dataplane.server import DataPlane

__all__ = ["AccessRecord", "DataPlane"]

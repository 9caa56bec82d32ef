"""The access record: one per request, handed to the access-log sink when the request ends.

Owns the record's shape only; it never formats, writes or filters log lines. The
cheapest record for the hot path is a plain tuple of the fields in `AccessRecord`'s order
(`AccessRow`): building one is a single bytecode, and the sink unpacks it in one more,
where the named tuple costs a C call to build and a generic unpack (~2,000 instructions
a request together). The method, path and request id in it are the bytes read from the
wire: the sink decodes them (latin-1) a batch at a time, not the data plane per request.
`AccessRecord` is the same fields by name with those three as text, for readers that are
not hot (`AccessRecord.of(row)`). The sink takes either.
"""

from __future__ import annotations

from typing import NamedTuple

# The fields of AccessRecord, in its order, as the data plane hands them over.
AccessRow = tuple[
    str, str, bytes, bytes, int, float, float | None, bytes, str, str | None, int, int,
    str | None, float,
]


class AccessRecord(NamedTuple):
    app: str  # "" when no app serves the host
    host: str
    method: str
    path: str
    status: int  # 499 when the client went away before the response head
    duration: float  # seconds from the end of the request head to the end of the response
    held: float | None  # seconds held while the app woke; None when not held
    request_id: str
    client: str
    upstream: str | None  # "host:port" of the endpoint used, None when none was
    bytes_in: int  # request head and body bytes read from the client
    bytes_out: int  # response bytes written to the client
    reason: str | None  # why we answered ourselves, or what went wrong
    # When the request head was read, on the data plane's monotonic clock: the request
    # ended at started + duration.
    started: float

    @classmethod
    def of(cls, row: AccessRow) -> AccessRecord:
        """The named record of a row the data plane handed over (its bytes decoded)."""
        method, path, request_id = row[2], row[3], row[7]
        return cls._make((
            *row[:2], method.decode("latin-1"), path.decode("latin-1"), *row[4:7],
            request_id.decode("latin-1"), *row[8:],
        ))  # fmt: skip

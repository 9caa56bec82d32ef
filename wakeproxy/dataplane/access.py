"""The access record: one per request, handed to the access-log sink when the request ends.

Owns the record's shape only; it never formats, writes or filters log lines. A named
tuple: the hot path builds it with one C call (`new_record`) and the sink unpacks it in
C, where a dataclass cost a Python-level `__init__` and thirteen attribute reads.
"""

from __future__ import annotations

from typing import NamedTuple


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


# `new_record(AccessRecord, (fields in order))`: the record without NamedTuple's
# Python-level `__new__`.
new_record = tuple.__new__

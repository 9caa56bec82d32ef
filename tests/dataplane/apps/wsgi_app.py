"""A plain WSGI app for gunicorn: answers `METHOD PATH BODY`; /slow?delay=S sleeps first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ.get("QUERY_STRING", "delay=0.2").split("=")[1]))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    out = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} ".encode() + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]

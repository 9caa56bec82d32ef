"""Every request in the hostile corpus gets its answer, reaches the app only when it is a
request the app should see, never makes wakeproxy connect anywhere else, and leaves the
proxy serving."""

from __future__ import annotations

import pytest

from tests.dataplane.conftest import Proxy, Upstream
from tests.hostile.conftest import IDN, Canary
from tests.hostile.corpus import CASES, Case, with_canary
from tests.hostile.rawhttp import first_response, still_serves
from tests.soak.support import figure
from wakeproxy.model.routes import normalize_host


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_request(shop: Proxy, upstream: Upstream, canary: Canary, case: Case):
    data = with_canary(case.data, canary.port)
    response, raw, closed = await first_response(shop, data)
    assert response is not None, raw
    assert response.status == case.status, (response.status, response.body)
    assert b"Traceback" not in raw
    if case.reaches is None:
        assert upstream.seen == []
        assert response.body.startswith(f"{case.status} ".encode())
        if case.status in (400, 405, 408, 414, 431):
            # The stream can no longer be trusted: answered, then closed.
            assert response.header("connection") == "close" and closed
    else:
        [seen] = upstream.seen  # exactly one request: nothing smuggled behind it
        assert seen.path == case.reaches
        assert seen.body == case.body
        # The Host the client sent goes on as sent (its case, port, trailing dot).
        assert normalize_host(seen.headers["Host"]) in ("shop.test", IDN)
    assert canary.connections == 0
    assert await still_serves(shop)


def test_corpus_size() -> None:
    refused = sum(1 for c in CASES if c.reaches is None)
    figure("hostile", f"raw-request corpus: {len(CASES)} requests, {refused} refused with a "
                      f"4xx and never forwarded, {len(CASES) - refused} forwarded as the app "
                      "should see them; 0 connections to the canary")
    assert len(CASES) >= 90

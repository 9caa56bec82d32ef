"""The admin API over a real socket: health, readiness, app listing, wake/sleep, auth, errors."""

from __future__ import annotations

import asyncio

import pytest

from tests.obs.conftest import TOKEN, MakeAdmin
from tests.obs.world import START, WALL_OFFSET
from wakeproxy.model.apps import AppPolicy
from wakeproxy.obs import admin as admin_module
from wakeproxy.obs.views import iso_utc

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_healthz_answers_ok_while_the_process_runs(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    admin.ready = False
    async with admin.client.get("/healthz") as resp:
        assert resp.status == 200
        assert (await resp.text()).strip() == "ok"


async def test_readyz_follows_readiness_both_ways(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    async with admin.client.get("/readyz") as resp:
        assert resp.status == 200
    admin.ready = False
    async with admin.client.get("/readyz") as resp:
        assert resp.status == 503
        assert "not ready" in await resp.text()
    admin.ready = True
    async with admin.client.get("/readyz") as resp:
        assert resp.status == 200


async def test_app_list_shows_each_apps_live_state(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    status, apps = await admin.json("GET", "/api/v1/apps")
    assert status == 200
    by_name = {a["name"]: a for a in apps}
    assert [a["name"] for a in apps] == ["api", "docs", "hello"]

    api = by_name["api"]
    assert api["state"] == "awake"
    assert api["hosts"] == ["api.localhost"]
    assert api["endpoints"] == ["127.0.0.1:41000"]
    assert api["in_flight"] == 1
    assert api["tunnels"] == 1
    assert api["requests"] == 2
    # Last access happened at monotonic START+121.5, shown as wall time.
    assert api["last_access"] == iso_utc(WALL_OFFSET + START + 121.5)
    assert api["last_access"].endswith("Z")
    assert api["idle_seconds"] == pytest.approx(8.5)
    assert api["idle_after"] == 300.0
    assert api["wake_timeout"] == 20.0
    assert api["asleep_seconds"] == pytest.approx(120.0)
    assert api["wake_attempts"] == 1
    assert api["last_failure"] is None

    hello = by_name["hello"]
    assert hello["state"] == "asleep"
    assert hello["hosts"] == ["hello.localhost", "*.hello.localhost"]
    assert hello["endpoints"] == []
    assert hello["last_access"] is None
    assert hello["idle_seconds"] is None
    assert hello["asleep_seconds"] == pytest.approx(130.0)  # asleep all along: cost saved

    docs = by_name["docs"]
    assert docs["state"] == "asleep"
    assert docs["wake_attempts"] == 1
    assert docs["last_failure"] == "exited with code 3"


async def test_one_app_and_an_unknown_one(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    status, app = await admin.json("GET", "/api/v1/apps/api")
    assert status == 200
    assert app["name"] == "api"
    assert app["state"] == "awake"
    status, body = await admin.json("GET", "/api/v1/apps/nope")
    assert status == 404
    assert body == {"error": "no app named 'nope'"}


async def test_wake_waits_until_ready_and_answers_the_new_state(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    admin.commands.gate = asyncio.Event()
    request = asyncio.ensure_future(admin.json("POST", "/api/v1/apps/hello/wake"))
    await asyncio.sleep(0.05)
    assert not request.done()  # still waking: the answer waits for readiness
    assert admin.world.board.get("hello").phase.value == "waking"  # type: ignore[union-attr]
    admin.commands.gate.set()
    status, app = await request
    assert status == 200
    assert app["state"] == "awake"
    assert app["endpoints"] == ["127.0.0.1:42000"]
    assert admin.commands.calls == [("wake", "hello")]


async def test_failed_wake_is_502_with_the_reason(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    admin.commands.fail["hello"] = "command exited with code 127: python4: not found"
    status, body = await admin.json("POST", "/api/v1/apps/hello/wake")
    assert status == 502
    assert body == {
        "error": "hello failed to wake: command exited with code 127: python4: not found"}


async def test_wake_the_platform_cannot_serve_is_503(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    admin.commands.unreachable.add("hello")
    status, body = await admin.json("POST", "/api/v1/apps/hello/wake")
    assert status == 503
    assert body["error"] == (
        "hello cannot be woken now: the Kubernetes API cannot be reached")


async def test_wake_timeout_is_504(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    admin.commands.time_out.add("api")
    status, body = await admin.json("POST", "/api/v1/apps/api/wake")
    assert status == 504
    assert body["error"] == "api did not become ready within its wake timeout (20s)"


async def test_admin_giving_up_never_cancels_the_wake(
    make_admin: MakeAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin request is bounded by the app's wake timeout; the wake itself goes on."""
    monkeypatch.setattr(admin_module, "WAKE_GRACE", 0.0)
    admin = await make_admin()
    admin.world.board.put(AppPolicy("hello", ("hello.localhost",), wake_timeout=0.05))
    admin.commands.gate = asyncio.Event()
    status, body = await admin.json("POST", "/api/v1/apps/hello/wake")
    assert status == 504
    assert "within its wake timeout (0.05s)" in body["error"]
    admin.commands.gate.set()
    for _ in range(100):
        if admin.commands.finished:
            break
        await asyncio.sleep(0.01)
    assert admin.commands.finished == [("wake", "hello")]
    assert admin.world.board.get("hello").phase.value == "awake"  # type: ignore[union-attr]


async def test_wake_while_shutting_down_is_503(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    admin.commands.closed = True
    status, body = await admin.json("POST", "/api/v1/apps/hello/wake")
    assert status == 503
    assert body == {"error": "hello: wakeproxy is shutting down"}


async def test_sleep_answers_the_new_state(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    status, app = await admin.json("POST", "/api/v1/apps/api/sleep")
    assert status == 200
    assert app["state"] == "asleep"
    assert app["endpoints"] == []


async def test_unknown_app_is_404_for_wake_and_sleep(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    for verb in ("wake", "sleep"):
        status, body = await admin.json("POST", f"/api/v1/apps/ghost/{verb}")
        assert status == 404
        assert body == {"error": "no app named 'ghost'"}
    assert admin.commands.calls == []  # refused before reaching the control plane


async def test_app_unknown_to_the_control_plane_is_404(make_admin: MakeAdmin) -> None:
    """An app removed between the lookup and the command (the control plane says unknown)."""
    admin = await make_admin()
    admin.world.board.put(AppPolicy("vanishing", ("v.localhost",)))
    status, body = await admin.json("POST", "/api/v1/apps/vanishing/wake")
    assert status == 404
    assert "vanishing" in body["error"]


async def test_writes_need_the_bearer_token(make_admin: MakeAdmin) -> None:
    admin = await make_admin(token=TOKEN)
    async with admin.client.post("/api/v1/apps/hello/wake") as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Bearer" in (await resp.json())["error"]
    async with admin.client.post(
        "/api/v1/apps/hello/wake", headers={"Authorization": "Bearer not-the-token"}
    ) as resp:
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
        assert (await resp.json()) == {"error": "the bearer token is not valid"}
    async with admin.client.post(
        "/api/v1/apps/hello/wake", headers={"Authorization": f"Basic {TOKEN}"}
    ) as resp:
        assert resp.status == 401
    assert admin.commands.calls == []

    status, app = await admin.json("POST", "/api/v1/apps/hello/wake", headers=AUTH)
    assert status == 200
    assert app["state"] == "awake"
    # Reads stay open: dashboards and `wakeproxy status` need no token.
    status, _ = await admin.json("GET", "/api/v1/apps")
    assert status == 200


async def test_auth_is_checked_before_the_app_name(make_admin: MakeAdmin) -> None:
    admin = await make_admin(token=TOKEN)
    async with admin.client.post("/api/v1/apps/ghost/sleep") as resp:
        assert resp.status == 401


async def test_without_a_configured_token_writes_are_open(make_admin: MakeAdmin) -> None:
    admin = await make_admin(token=None)
    status, app = await admin.json("POST", "/api/v1/apps/api/sleep")
    assert status == 200
    assert app["state"] == "asleep"


async def test_unknown_endpoint_and_wrong_method_answer_json(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    status, body = await admin.json("GET", "/api/v1/nothing")
    assert status == 404
    assert body == {"error": "no such endpoint: /api/v1/nothing"}
    async with admin.client.get("/api/v1/apps/hello/wake") as resp:
        assert resp.status == 405
        assert "POST" in resp.headers["Allow"]
        assert "GET is not allowed" in (await resp.json())["error"]


async def test_a_crash_in_a_handler_is_a_json_500_without_traceback(
    make_admin: MakeAdmin,
) -> None:
    admin = await make_admin()
    admin.ready = RuntimeError("secret internals")
    async with admin.client.get("/readyz") as resp:
        assert resp.status == 500
        text = await resp.text()
    assert "Traceback" not in text
    assert "secret internals" not in text
    assert "internal error" in text


async def test_resolve_tells_which_app_serves_a_host(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    status, body = await admin.json("GET", "/api/v1/resolve?host=PR-7.Hello.localhost:8080")
    assert status == 200
    assert body == {"host": "pr-7.hello.localhost", "app": "hello"}
    status, body = await admin.json("GET", "/api/v1/resolve?host=elsewhere.example")
    assert body == {"host": "elsewhere.example", "app": None}
    status, body = await admin.json("GET", "/api/v1/resolve")
    assert status == 400


async def test_responses_name_the_cluster(make_admin: MakeAdmin) -> None:
    admin = await make_admin()
    async with admin.client.get("/api/v1/apps") as resp:
        assert resp.headers["X-Wakeproxy-Cluster"] == "test"

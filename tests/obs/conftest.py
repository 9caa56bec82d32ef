from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.obs.world import ScriptedCommands, World, make_world
from wakeproxy.obs.admin import build_admin_app
from wakeproxy.settings import Savings

TOKEN = "s3cret-admin-token-0123"


class Admin:
    """A running admin server (real socket on 127.0.0.1) over a populated world."""

    def __init__(self, world: World, commands: ScriptedCommands, client: TestClient) -> None:
        self.world = world
        self.commands = commands
        self.client = client
        self.ready: bool | Exception = True

    def is_ready(self) -> bool:
        if isinstance(self.ready, Exception):
            raise self.ready
        return self.ready

    async def json(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        if method != "GET" and "data" not in kw:
            kw.setdefault("json", {})  # admin writes are JSON
        async with self.client.request(method, path, **kw) as resp:
            return resp.status, await resp.json()


MakeAdmin = Callable[..., Awaitable[Admin]]


@pytest.fixture
def make_admin(aiohttp_client: Any) -> MakeAdmin:
    async def make(
        token: str | None = None, world: World | None = None, savings: Savings | None = None,
    ) -> Admin:
        world = world or make_world()
        commands = ScriptedCommands(world)
        holder: list[Admin] = []
        app = build_admin_app(
            board=world.board, ledger=world.ledger, routes=world.routes, commands=commands,
            registry=world.registry(), cluster="test", token=token,
            ready=lambda: holder[0].is_ready(), clock=world.clock, savings=savings,
        )
        client = await aiohttp_client(app)
        admin = Admin(world, commands, client)
        holder.append(admin)
        return admin

    return make

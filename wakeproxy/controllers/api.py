"""The controllers' admin routes: builds, deploys, app deletion and the GitHub webhook.

Mounted on the admin application by the composition root (obs never imports this).
Writes need the admin bearer token, like every admin write, except `POST /hooks/github`,
which GitHub signs instead (`X-Hub-Signature-256`). `ERRORS` is the one table of
controller error → API error. Must never: send a traceback, or let a client hang-up
cancel a deploy or a delete half-way.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web

from wakeproxy.controllers.errors import (
    BadWebhook,
    CapReached,
    ControllerError,
    DeclaredInConfig,
    DeployFailed,
    InvalidRef,
    NoNextStage,
    NotBuildable,
    NotDeployable,
    NotManaged,
    UnknownApp,
    UnknownBuild,
    WebhookRefused,
)
from wakeproxy.controllers.ports import Controllers
from wakeproxy.obs.api_errors import (
    ApiError,
    BadRequest,
    CommandFailed,
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    error_middleware,
)
from wakeproxy.obs.shield import shielded

T = TypeVar("T")

WEBHOOK_PATH = "/hooks/github"
# Reads that need the admin token when one is set: build logs (and the failure reasons
# quoting them) show what a build printed, which may be more than anyone should see.
PRIVATE_READS = ("/api/v1/builds",)

ERRORS: dict[type[ControllerError], type[ApiError]] = {
    UnknownApp: NotFound,
    UnknownBuild: NotFound,
    InvalidRef: BadRequest,
    CapReached: TooManyRequests,
    NotBuildable: Conflict,
    NotDeployable: Conflict,
    DeclaredInConfig: Conflict,
    NoNextStage: Conflict,
    NotManaged: Conflict,
    DeployFailed: CommandFailed,
    BadWebhook: BadRequest,
    WebhookRefused: Unauthorized,
}


def _api_error(e: ControllerError) -> ApiError:
    return ERRORS.get(type(e), CommandFailed)(e.message)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise BadRequest("the request body must be a JSON object")
    return doc


class _Routes:
    def __init__(self, controllers: Controllers) -> None:
        self.c = controllers

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            outcome = await self.c.webhook(request.headers, body)
        except ControllerError as e:
            raise _api_error(e) from None
        return web.json_response(outcome, status=202)

    async def start_build(self, request: web.Request) -> web.Response:
        doc = await _json_body(request)
        ref = doc.get("ref", "HEAD")
        deploy = doc.get("deploy", False)
        if not isinstance(ref, str):
            raise BadRequest("ref must be a branch, tag, commit or revision like main, "
                             "3f2a9c1 or HEAD~1")
        if not isinstance(deploy, bool):
            raise BadRequest("deploy must be true or false")
        try:
            build = self.c.build(request.match_info["name"], ref, deploy=deploy)
        except ControllerError as e:
            raise _api_error(e) from None
        return web.json_response(build.view(), status=202,
                                 headers={"Location": f"/api/v1/builds/{build.id}"})

    async def list_builds(self, request: web.Request) -> web.Response:
        app = request.query.get("app")
        return web.json_response(await self.c.list_builds(app))

    async def get_build(self, request: web.Request) -> web.Response:
        try:
            build = await self.c.read_build(request.match_info["id"])
        except ControllerError as e:
            raise _api_error(e) from None
        return web.json_response(build.view(tail=True))

    async def build_log(self, request: web.Request) -> web.StreamResponse:
        try:
            build = await self.c.read_build(request.match_info["id"])
        except ControllerError as e:
            raise _api_error(e) from None
        follow = request.query.get("follow", "") in ("1", "true", "yes")
        blog = build.log
        if not follow:
            data, _ = blog.read(0)
            return web.Response(body=data, content_type="text/plain", charset="utf-8")
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        offset = 0
        while True:
            grown = blog.grown()
            data, offset = blog.read(offset)
            if data:
                await response.write(data)
            if blog.closed and offset == blog.end:
                break
            await grown.wait()
        await response.write_eof()
        return response

    async def deploy(self, request: web.Request) -> web.Response:
        doc = await _json_body(request)
        build_id, image = doc.get("build"), doc.get("image")
        given = [k for k, v in (("build", build_id), ("image", image)) if v is not None]
        if len(given) != 1 or not isinstance(doc[given[0]], str) or not doc[given[0]]:
            raise BadRequest('give the build to deploy: {"build": "<build id>"}, or an image: '
                             '{"image": "<image reference>"}')
        app = request.match_info["name"]
        try:
            if isinstance(image, str):
                outcome = await shielded(self.c.deploy_image(app, image))
                return web.json_response({"app": app, "image": image, "outcome": outcome})
            assert isinstance(build_id, str)
            build, outcome = await shielded(self.c.deploy(app, build_id))
        except ControllerError as e:
            raise _api_error(e) from None
        return web.json_response({"app": app, "build": build.view(), "outcome": outcome})

    async def promote(self, request: web.Request) -> web.Response:
        app = request.match_info["name"]
        try:
            # Like a deploy: a client that hangs up does not cut the swap short.
            promotion = await shielded(self.c.promote(app))
        except ControllerError as e:
            raise _api_error(e) from None
        return web.json_response(promotion.view())

    async def delete_app(self, request: web.Request) -> web.Response:
        app = request.match_info["name"]
        try:
            await shielded(self.c.delete(app))
        except ControllerError as e:
            raise _api_error(e) from None
        return web.json_response({"deleted": app})


def webhook_app(controllers: Controllers) -> web.Application:
    """The GitHub webhook alone (`webhook_listen`): the one admin route that may face
    the internet, so the admin port can stay private."""
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post(WEBHOOK_PATH, _Routes(controllers).webhook)
    return app


def add_controller_routes(app: web.Application, controllers: Controllers) -> None:
    """Mount the routes; the admin app must let WEBHOOK_PATH through without a token."""
    r = _Routes(controllers)
    app.router.add_post(WEBHOOK_PATH, r.webhook)
    app.router.add_post("/api/v1/apps/{name}/builds", r.start_build)
    app.router.add_post("/api/v1/apps/{name}/deploys", r.deploy)
    app.router.add_post("/api/v1/apps/{name}/promote", r.promote)
    app.router.add_delete("/api/v1/apps/{name}", r.delete_app)
    app.router.add_get("/api/v1/builds", r.list_builds)
    app.router.add_get("/api/v1/builds/{id}", r.get_build)
    app.router.add_get("/api/v1/builds/{id}/log", r.build_log)

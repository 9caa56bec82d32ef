"""The CLI's build commands: build, builds, logs, deploy, promote, delete (admin API clients).

Standard library only, like the rest of the client side of the CLI. `wakeproxy build`
shows progress while the build runs (state changes, or the live log with --follow) and
exits 1 when the build does not succeed. Must never: print a traceback; errors from the
admin server propagate as the CLI's own error types and are printed by `cli.main`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, Protocol

_POLL = 0.5


class Client(Protocol):
    def call(self, method: str, path: str, body: Any = None) -> Any: ...

    def stream(self, path: str) -> Iterator[bytes]: ...


ClientFactory = Callable[[argparse.Namespace], Client]


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _out(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


def _summary(build: dict[str, Any]) -> str:
    state = str(build.get("state", "?"))
    line = f"build {build.get('id')} of {build.get('app')}: {state}"
    commit = build.get("commit")
    if commit:
        line += f" at {str(commit)[:12]}"
    started, finished = build.get("started_at"), build.get("finished_at")
    if isinstance(started, int | float) and isinstance(finished, int | float):
        line += f" in {finished - started:.1f}s"
    if state in ("failed", "cancelled") and build.get("reason"):
        line += f": {build['reason']}"
    return line


def _finished(build: dict[str, Any]) -> bool:
    return build.get("state") in ("succeeded", "failed", "cancelled")


def cmd_build(args: argparse.Namespace, client: Client) -> int:
    body = {"ref": args.ref, "deploy": args.deploy}
    build = client.call("POST", f"/api/v1/apps/{_q(args.app)}/builds", body)
    build_id = str(build.get("id"))
    if args.json and args.detach:
        print(json.dumps(build, indent=2))
        return 0
    print(f"build {build_id} of {args.app} at {args.ref}: {build.get('state')}", flush=True)
    if args.detach:
        return 0
    if args.follow:
        for chunk in client.stream(f"/api/v1/builds/{_q(build_id)}/log?follow=1"):
            _out(chunk)
        build = client.call("GET", f"/api/v1/builds/{_q(build_id)}")
    else:
        last = build.get("state")
        while not _finished(build):
            time.sleep(_POLL)
            build = client.call("GET", f"/api/v1/builds/{_q(build_id)}")
            if build.get("state") != last:
                last = build.get("state")
                print(f"build {build_id}: {last}", flush=True)
    succeeded = build.get("state") == "succeeded"
    if not args.json:
        print(_summary(build), flush=True)
    if succeeded and args.deploy:
        build = _await_deploy(client, build)
    if args.json:
        print(json.dumps(build, indent=2))
    if not succeeded:
        if not args.follow:
            for line in build.get("log_tail") or []:
                print(f"  | {line}", file=sys.stderr)
        return 1
    if not args.deploy:
        print(f"deploy it with: wakeproxy deploy {args.app} {build_id}")
        return 0
    what = f"build {build_id} of {build.get('app')}"
    if build.get("commit"):
        what += f" (commit {str(build['commit'])[:7]})"
    if build.get("deploy_error"):
        print(f"{what} was not deployed: {build['deploy_error']}", file=sys.stderr)
        return 1
    if not args.json:
        outcome = build.get("deploy_outcome")
        print(f"deployed {what}" + (f": {outcome}" if outcome else ""))
    return 0


def _await_deploy(client: Client, build: dict[str, Any]) -> dict[str, Any]:
    """The build once the server deployed it, or said why it did not."""
    build_id = str(build.get("id"))
    while not (build.get("deployed_at") or build.get("deploy_error")):
        time.sleep(_POLL)
        build = client.call("GET", f"/api/v1/builds/{_q(build_id)}")
    return build


def _release(build: dict[str, Any]) -> str:
    """Whether the build's release can still be deployed: kept, gone, or none made."""
    if build.get("state") != "succeeded":
        return "-"
    return "kept" if build.get("release") else "gone"


def _live(build: dict[str, Any]) -> str:
    """The apps running the build now (its own, and the next stages it was promoted to)."""
    if build.get("live") is None:
        return "?"
    return ",".join(build.get("live_on") or []) or "-"


def format_builds(builds: list[dict[str, Any]]) -> str:
    """One row per build; LIVE names the apps that run it now, RELEASE whether the build
    can still be deployed (`wakeproxy deploy APP BUILD`)."""
    header = ("BUILD", "APP", "REF", "COMMIT", "STATE", "EXIT", "RELEASE", "LIVE")
    rows = [header] + [
        (str(b.get("id", "?")), str(b.get("app", "?")), str(b.get("ref", "?"))[:20],
         str(b.get("commit") or "-")[:12], str(b.get("state", "?")),
         "-" if b.get("exit_code") is None else str(b["exit_code"]), _release(b), _live(b))
        for b in builds
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def cmd_builds(args: argparse.Namespace, client: Client) -> int:
    path = "/api/v1/builds" + (f"?app={_q(args.app)}" if args.app else "")
    builds = client.call("GET", path)
    if args.json:
        print(json.dumps(builds, indent=2))
    elif not builds:
        print("no builds")
    else:
        print(format_builds(builds))
    return 0


def cmd_logs(args: argparse.Namespace, client: Client) -> int:
    path = f"/api/v1/builds/{_q(args.build)}/log" + ("?follow=1" if args.follow else "")
    for chunk in client.stream(path):
        _out(chunk)
    return 0


def cmd_deploy(args: argparse.Namespace, client: Client) -> int:
    if (args.build is None) == (args.image is None):
        print("wakeproxy deploy: give either BUILD or --image IMAGE", file=sys.stderr)
        return 2
    what = args.build if args.build is not None else args.image
    body = {"build": args.build} if args.build is not None else {"image": args.image}
    result = client.call("POST", f"/api/v1/apps/{_q(args.app)}/deploys", body)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.app}: deployed {what}: {result.get('outcome', 'done')}")
    return 0


def cmd_promote(args: argparse.Namespace, client: Client) -> int:
    p = client.call("POST", f"/api/v1/apps/{_q(args.app)}/promote")
    if args.json:
        print(json.dumps(p, indent=2))
        return 0
    what = f"build {p.get('build')}" if p.get("build") else f"image {p.get('image')}"
    if p.get("commit"):
        what += f" (commit {str(p['commit'])[:7]})"
    line = f"promoted {what} from {p.get('app')} to {p.get('to')}: {p.get('outcome', 'done')}"
    if p.get("build") and p.get("image"):
        line += f"\n  image {p['image']}"
    print(line)
    return 0


def cmd_delete(args: argparse.Namespace, client: Client) -> int:
    result = client.call("DELETE", f"/api/v1/apps/{_q(args.app)}")
    print(json.dumps(result, indent=2) if args.json else f"{args.app}: deleted")
    return 0


def add_build_commands(
    sub: Any, parent: argparse.ArgumentParser, client: ClientFactory,
) -> None:
    """Register the commands on the CLI's subparsers; `client` makes the admin client."""

    def bind(p: argparse.ArgumentParser, cmd: Callable[[argparse.Namespace, Client], int]) -> None:
        p.set_defaults(func=lambda args: cmd(args, client(args)))

    p = sub.add_parser("build", parents=[parent], help="build an app from its repo at a ref")
    p.add_argument("app", metavar="APP")
    p.add_argument("--ref", default="HEAD", help="branch, tag or commit (default: HEAD)")
    p.add_argument("--follow", action="store_true", help="show the build log as it runs")
    p.add_argument("--deploy", action="store_true",
                   help="deploy the build once it succeeds, and wait until it is deployed")
    p.add_argument("--detach", action="store_true", help="return once the build is queued")
    bind(p, cmd_build)

    p = sub.add_parser("builds", parents=[parent], help="list builds and their state")
    p.add_argument("--app", metavar="APP", help="only this app's builds")
    bind(p, cmd_builds)

    p = sub.add_parser("logs", parents=[parent],
                       help="show a build's log (an app's own output: app-logs)")
    p.add_argument("build", metavar="BUILD")
    p.add_argument("--follow", action="store_true", help="keep printing until the build ends")
    bind(p, cmd_logs)

    p = sub.add_parser("deploy", parents=[parent],
                       help="switch an app to a built release (or, on Kubernetes, an image)")
    p.add_argument("app", metavar="APP")
    p.add_argument("build", metavar="BUILD", nargs="?")
    p.add_argument("--image", metavar="IMAGE", help="a prebuilt image (Kubernetes platform)")
    bind(p, cmd_deploy)

    p = sub.add_parser("promote", parents=[parent],
                       help="deploy the release an app runs onto its next stage (promote_to)")
    p.add_argument("app", metavar="APP")
    bind(p, cmd_promote)

    p = sub.add_parser("delete", parents=[parent], help="delete an app and its releases")
    p.add_argument("app", metavar="APP")
    bind(p, cmd_delete)

"""The `wakeproxy` command: serve, check-config, and a small client of the admin API.

`serve` is the only command that imports the daemon; the client commands (status, wake,
sleep) use only the standard library so they start fast. Exit codes: 0 success, 1 a
problem the user has to fix (bad config, unreachable admin server, refused command),
2 bad usage.

Must never: print a traceback for an expected failure, or send the admin token anywhere
but the admin server it was given for.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from wakeproxy import __version__
from wakeproxy.cli_builds import add_build_commands
from wakeproxy.console import format_duration, format_headroom, format_savings, format_table
from wakeproxy.settings import ConfigError, load_settings, parse_duration

__all__ = ["format_duration", "format_savings", "format_table", "main"]

DEFAULT_ADMIN = "http://127.0.0.1:9090"
_TIMEOUTS = {"status": 10.0, "sleep": 120.0, "wake": 300.0, "builds": 10.0, "delete": 120.0,
             "deploy": 300.0, "promote": 300.0, "build": 600.0, "logs": 600.0,
             "app-logs": 30.0}


class CliError(Exception):
    """A failure to report on stderr as one message, exit code 1."""


class Unreachable(CliError): ...


class Refused(CliError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# -- admin API client ------------------------------------------------------------------


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminClient:
    def __init__(self, base: str, token: str | None, timeout: float | None) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout
        # An HTTP proxy from the environment must not see (or break) loopback admin traffic.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.base) else []
        self._opener = urllib.request.build_opener(*handlers)

    @contextlib.contextmanager
    def _open(self, req: urllib.request.Request) -> Iterator[http.client.HTTPResponse]:
        """The response to `req`, read inside the block; Refused or Unreachable otherwise."""
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                yield resp
        except urllib.error.HTTPError as e:
            raise Refused(_error_message(e), e.code) from None
        except urllib.error.URLError as e:
            raise Unreachable(self._unreachable(e.reason)) from None
        except (OSError, TimeoutError) as e:
            raise Unreachable(self._unreachable(e)) from None

    def _request(self, method: str, path: str, body: Any) -> urllib.request.Request:
        data = json.dumps(body).encode() if body is not None else None
        if data is None and method == "POST":
            data = b""
        req = urllib.request.Request(self.base + path, method=method, data=data)
        req.add_header("Accept", "application/json")
        if method != "GET":  # the admin API takes JSON writes only (a browser's cannot be)
            req.add_header("Content-Type", "application/json")
            if data == b"":
                req.data = b"{}"
        if self.token:  # reads of build logs need it too
            req.add_header("Authorization", f"Bearer {self.token}")
        return req

    def stream(self, path: str) -> Iterator[bytes]:
        """GET `path` and yield its body as it arrives (a followed build log)."""
        with self._open(self._request("GET", path, None)) as resp:
            while chunk := resp.read1(65536):
                yield chunk

    def call(self, method: str, path: str, body: Any = None) -> Any:
        url = self.base + path
        with self._open(self._request(method, path, body)) as resp:
            body = resp.read()
        try:
            return json.loads(body)
        except ValueError:
            raise CliError(f"{url} answered something that is not JSON; is it wakeproxy's "
                           "admin server?") from None

    def _unreachable(self, reason: object) -> str:
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return (f"cannot reach the admin server at {self.base} ({text}); is "
                "`wakeproxy serve` running? Point to it with --admin URL, --config FILE "
                "or WAKEPROXY_ADMIN")


def _error_message(e: urllib.error.HTTPError) -> str:
    try:
        raw = e.read()
        doc = json.loads(raw)
        message = str(doc["error"]) if isinstance(doc, dict) and "error" in doc else raw.decode()
    except (ValueError, OSError, UnicodeDecodeError):
        message = e.reason if isinstance(e.reason, str) else ""
    message = message.strip() or "no explanation"
    hint = "; pass --token or set WAKEPROXY_TOKEN" if e.code == 401 else ""
    return f"{message} (HTTP {e.code}{hint})"


def _period(text: str) -> str:
    """argparse type for --period: checked here so a typo costs no round trip."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = 0.0
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"expected a duration like 24h or 90m, got {text!r}")
    return text


# -- commands ---------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    raise CliError(message)


def _admin_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _client(args: argparse.Namespace) -> AdminClient:
    token: str | None = args.token or os.environ.get("WAKEPROXY_TOKEN") or None
    url: str | None = args.admin
    if args.config:
        settings = load_settings(args.config)
        if url is None and settings.admin_listen[1] == 0:
            _fail(f"{args.config}: admin_listen: port 0 is chosen at start-up; "
                  "pass the admin server's address with --admin URL")
        url = url or _admin_url(*settings.admin_listen)
        token = token or settings.admin_token
    url = url or os.environ.get("WAKEPROXY_ADMIN") or DEFAULT_ADMIN
    if "://" not in url:
        url = "http://" + url
    timeout = args.timeout if args.timeout is not None else _TIMEOUTS.get(args.command, 30.0)
    return AdminClient(url, token, timeout)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    from wakeproxy.app import run  # the daemon's imports are paid only by `serve`

    return run(settings)


def cmd_check_config(args: argparse.Namespace) -> int:
    code = 0
    for path in args.files:
        try:
            settings = load_settings(path)
        except ConfigError as e:
            for problem in e.problems:
                print(problem, file=sys.stderr)
            code = 1
            continue
        n = len(settings.apps)
        print(f"{path}: ok ({n} app{'' if n == 1 else 's'})")
    return code


def cmd_status(args: argparse.Namespace) -> int:
    if args.savings:
        return _savings(args)
    client = _client(args)
    apps = client.call("GET", "/api/v1/apps")
    if not isinstance(apps, list):
        _fail("the admin server answered an unexpected app list")
    if args.json:
        print(json.dumps(apps, indent=2))
    elif not apps:
        print("no apps configured")
    else:
        print(format_table(apps))
    if not args.json:
        _print_headroom(client)
    return 0


def _print_headroom(client: AdminClient) -> None:
    """The room held for wakes, on Kubernetes (elsewhere, or from an older server: 404)."""
    try:
        held = client.call("GET", "/api/v1/headroom")
    except Refused as e:
        if e.status != 404:
            raise
        return
    if isinstance(held, dict):
        print(format_headroom(held))


def _savings(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"period": args.period})
    try:
        report = _client(args).call("GET", f"/api/v1/savings?{query}")
    except Refused as e:
        _fail(f"savings: {e}")
    if not isinstance(report, dict):
        _fail("the admin server answered an unexpected savings report")
    print(json.dumps(report, indent=2) if args.json else format_savings(report))
    return 0


def _command(args: argparse.Namespace, verb: str) -> int:
    client = _client(args)
    path = f"/api/v1/apps/{urllib.parse.quote(args.app, safe='')}/{verb}"
    started = time.monotonic()
    try:
        app = client.call("POST", path)
    except Refused as e:
        _fail(f"{verb} {args.app}: {e}")
    took = time.monotonic() - started
    if args.json:
        print(json.dumps(app, indent=2))
        return 0
    state = app.get("state", "?") if isinstance(app, dict) else "?"
    endpoints = ", ".join(app.get("endpoints") or []) if isinstance(app, dict) else ""
    at = f" at {endpoints}" if endpoints else ""
    print(f"{args.app}: {state}{at} ({format_duration(took)})")
    return 0


def cmd_wake(args: argparse.Namespace) -> int:
    return _command(args, "wake")


def cmd_sleep(args: argparse.Namespace) -> int:
    return _command(args, "sleep")


def cmd_app_logs(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.follow and args.timeout is None:
        client.timeout = None  # a quiet app sends nothing for as long as it likes
    query = urllib.parse.urlencode({"lines": args.lines, **({"follow": 1} if args.follow else {})})
    out = sys.stdout.buffer
    app = urllib.parse.quote(args.app, safe="")
    for chunk in client.stream(f"/api/v1/apps/{app}/logs?{query}"):
        out.write(chunk)
        out.flush()
    return 0


def _lines(text: str) -> int:
    if not text.isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError(f"expected a number of lines from 0 to 1000, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wakeproxy", description="Scale-to-zero front door for HTTP apps.")
    parser.add_argument("--version", action="version", version=f"wakeproxy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", required=True, metavar="FILE", help="cluster config file")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate config files and exit")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(func=cmd_check_config)

    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--admin", metavar="URL",
                        help=f"admin server (default: $WAKEPROXY_ADMIN or {DEFAULT_ADMIN})")
    client.add_argument("--config", metavar="FILE",
                        help="read admin_listen and the admin token from this config file")
    client.add_argument("--token",
                        help="admin token for writes and build logs (default: $WAKEPROXY_TOKEN)")
    client.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up waiting for the admin server after this long")
    client.add_argument("--json", action="store_true", help="print the server's JSON")

    status = sub.add_parser("status", parents=[client], help="show every app's state")
    status.add_argument("--savings", action="store_true",
                        help="show time asleep and replica-hours saved per app instead")
    status.add_argument("--period", type=_period, default="24h", metavar="DURATION",
                        help="with --savings: how far back to look (default 24h, at most 168h)")
    status.set_defaults(func=cmd_status)
    for verb, func, text in (("wake", cmd_wake, "wake an app and wait until it is ready"),
                             ("sleep", cmd_sleep, "scale an app to zero now")):
        p = sub.add_parser(verb, parents=[client], help=text)
        p.add_argument("app", metavar="APP")
        p.set_defaults(func=func)
    add_build_commands(sub, client, _client)
    # Not `logs APP`: `logs BUILD` shows a build's log, and an app and a build cannot be
    # told apart by their names, so the app's own output has a verb of its own.
    p = sub.add_parser("app-logs", parents=[client],
                       help="show an app's own output (stdout/stderr, or its pods' logs)")
    p.add_argument("app", metavar="APP")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing new lines, through the app's sleeps and wakes")
    p.add_argument("--lines", "-n", type=_lines, default=100, metavar="N",
                   help="recent lines to show first (default 100, at most 1000)")
    p.set_defaults(func=cmd_app_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    except CliError as e:
        print(f"wakeproxy: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

"""A small HTTP app for tests, started by the local platform with PORT in its environment.

    appserver.py [--pidfile P] [--ready-file F] [--term-delay S] [--ignore-term] [--child P]
                 [--hits H]

GET / answers 200 "hello from <pid>"; GET /ready answers 503 until the --ready-file
exists, then 200. --term-delay makes SIGTERM take S seconds; --ignore-term ignores it;
--child starts `sleep 60` in the same process group and writes its pid to P. --hits appends
"<path> <User-Agent>" to H for every request, as it arrives.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pidfile")
    ap.add_argument("--ready-file")
    ap.add_argument("--term-delay", type=float, default=0.0)
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--hits")
    args = ap.parse_args()
    if args.pidfile:  # before listening: whoever saw it ready can read it
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))

    if args.child:
        child = subprocess.Popen(["sleep", "60"])
        with open(args.child, "w") as f:
            f.write(str(child.pid))
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.term_delay:
        def slow_exit(signum: int, frame: object) -> None:
            threading.Timer(args.term_delay, os._exit, (0,)).start()
        signal.signal(signal.SIGTERM, slow_exit)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if args.hits:
                with open(args.hits, "a") as f:
                    f.write(f"{self.path} {self.headers.get('User-Agent', '-')}\n")
            if self.path == "/ready" and not (args.ready_file and os.path.exists(args.ready_file)):
                self.send_response(503)
                body = b"not yet\n"
            else:
                self.send_response(200)
                body = f"hello from {os.getpid()}\n".encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            sys.stderr.write(f"request {self.path}\n")

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print(f"listening on {os.environ['PORT']}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

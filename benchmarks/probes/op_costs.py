"""What one operation costs on this interpreter, in instructions: the unit the hot path is
made of.

    python benchmarks/probes/op_costs.py          # needs valgrind; ~2 min

Each operation runs in a loop inside a function (locals, as in the data plane's code)
under callgrind, 2,000 and 6,000 times; the difference over 4,000 is its cost per run,
start-up excluded. The empty loop is printed first: subtract it from the rest. The
operands are what the common request handles: wrk's 38-byte request head, nginx's
answer (168-byte head, 100-byte body) and its five fields.

What it shows: a call into C with arguments (`bytes.find`, `re.match`, `dict.get`) costs
hundreds of instructions before it does any work, a pass over a head ~1-3k whatever does
it, and each field httptools hands to an `on_header` callback ~1.1k with an empty
callback. The floor makes ~20 such operations per request; every rule wakeproxy adds
(routing, counting, forwarded headers, hop-by-hop fields, the access line) is several.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

SETUP = r'''
import re, time, httptools
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
ANSWER = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 06:00:00 GMT\r\n"
          b"Content-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n"
          + b"x" * 100)
HEAD = ANSWER[:ANSWER.find(b"\r\n\r\n")]
LINE = re.compile(rb"([A-Z]+) (/[^ ]*) HTTP/1\.1\r\n[Hh][Oo][Ss][Tt]:[ \t]*([^\s]+)\r\n")
FIELD = re.compile(rb"\r\nconnection:")
table = {b"bench.test": 1}
class Slots:
    __slots__ = ("x",)
    def __init__(self): self.x = 1
    def method(self, a, b, c): pass
obj = Slots()
def function(a, b, c): pass
class NoCallbacks: pass
class EmptyCallback:
    def on_header(self, name, value): pass
bare = httptools.HttpResponseParser(NoCallbacks())
fields = httptools.HttpResponseParser(EmptyCallback())
clock = time.monotonic
'''
OPS = {
    "empty loop": "pass",
    "attribute load + store": "obj.x = obj.x",
    "Python function call (3 args)": "function(1, 2, 3)",
    "Python method call (3 args)": "obj.method(1, 2, 3)",
    "dict.get": "table.get(b'bench.test')",
    "time.monotonic()": "clock()",
    "14-tuple built": "(obj, obj, obj, obj, obj, obj, obj, obj, obj, obj, obj, obj, obj, obj)",
    "bytes.find, request head": "REQUEST.find(b'\\r\\n\\r\\n')",
    "bytes.lower, request head": "REQUEST.lower()",
    "regex match, request line + Host": "LINE.match(REQUEST)",
    "bytes.find, answer head": "HEAD.find(b'\\r\\nConnection:')",
    "regex search, answer head": "FIELD.search(HEAD)",
    "bytes.lower, answer head": "HEAD.lower()",
    "join of 8 pieces": "b''.join((REQUEST, REQUEST, REQUEST, REQUEST, REQUEST, REQUEST, "
                        "REQUEST, REQUEST))",
    "httptools, answer, no callbacks": "bare.feed_data(ANSWER)",
    "httptools, answer, empty on_header": "fields.feed_data(ANSWER)",
}


def _names(stmt: str, known: dict[str, object]) -> list[str]:
    return [n for n in compile(stmt, "op", "exec").co_names if n in known]


def _run(name: str, n: int) -> None:
    """Child process: `name`'s operation `n` times, in a function with locals."""
    import gc

    gc.disable()  # a collection landing in one run and not the other would skew it
    known: dict[str, object] = {}
    exec(SETUP, known)
    stmt = OPS[name]
    names = _names(stmt, known)
    exec(f"def bench(n, {', '.join(names)}):\n    for _ in range(n):\n        {stmt}\n", known)
    known["bench"](n, *[known[k] for k in names])  # type: ignore[operator]


def _count(name: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as wd:
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={wd}/cg.out",
             sys.executable, __file__, "--run", name, str(n)],
            check=True, capture_output=True,
        )  # fmt: skip
        text = Path(wd, "cg.out").read_text()
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    assert match is not None
    return int(match[1])


def main() -> int:
    if sys.argv[1:2] == ["--run"]:
        _run(sys.argv[2], int(sys.argv[3]))
        return 0
    base = 0.0
    for name in OPS:
        per_run = (_count(name, 6000) - _count(name, 2000)) / 4000
        if name == "empty loop":
            base = per_run
            print(f"{name:38} {per_run:7,.0f} instructions per run (subtracted below)")
        else:
            print(f"{name:38} {per_run - base:7,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

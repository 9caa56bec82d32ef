"""Fuzz wakeproxy's request-head path (see request_head.py for what each input checks).

With atheris (coverage-guided; `pip install atheris`), libFuzzer options apply:

    python fuzz/fuzz_request_head.py -dict=fuzz/request_head.dict fuzz/corpus/request_head
    python fuzz/fuzz_request_head.py -runs=200000 -max_len=4096 -dict=fuzz/request_head.dict \
        fuzz/corpus/request_head

The first runs until a failure. libFuzzer adds inputs to the first corpus directory it is
given: pass a copy to keep the seeds as they are.

Without atheris (or with WAKEPROXY_FUZZ_PLAIN=1) the same entry point gets random
mutations of the corpus files, with the options -runs=N, -seed=N and -max_len=N. Either
way the run ends with a line "Done N runs in S second(s)"; a failing input is written to
crash-<sha1> and the exit status is not 0.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Pieces a mutation may splice in: the bytes HTTP parsing turns on (request_head.dict holds
# the same for libFuzzer).
TOKENS = (
    b"\r\n", b"\r\n\r\n", b"\n", b"\r", b":", b" ", b"\t", b",", b";", b"\x00", b"\x7f",
    b"\xff", b"HTTP/1.1", b"HTTP/1.0", b"Host: ", b"shop.test", b"sleepy.test",
    b"xn--bcher-kva.test", b"Content-Length: ", b"Transfer-Encoding: chunked",
    b"Connection: ", b"close", b"keep-alive", b"Upgrade: websocket", b"Expect: 100-continue",
    b"X-Forwarded-For: ", b"0\r\n\r\n", b"ffffffff", b"GET ", b"POST ", b"HEAD ",
    b"CONNECT ", b"OPTIONS * ", b"http://", b"[::1]", b"127.0.0.1:", b"@", b"/", b"%",
)


def options(argv: list[str]) -> tuple[dict[str, int], list[Path]]:
    opts: dict[str, int] = {}
    dirs = []
    for arg in argv[1:]:
        if arg.startswith("-") and "=" in arg:
            key, _, value = arg[1:].partition("=")
            if value.lstrip("-").isdigit():
                opts[key] = int(value)
        else:
            dirs.append(Path(arg))
    return opts, dirs


def mutate(rng: random.Random, data: bytes, seeds: list[bytes], max_len: int) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and buf:
            buf[pos : pos + rng.randint(1, 16)] = b""
        elif op == 3 and buf:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end] * rng.randint(1, 4)
        elif op == 4:
            other = rng.choice(seeds)
            start = rng.randint(0, len(other))
            buf[pos:] = other[start:]
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buf[:max_len])


def run_without_atheris(one_input: Callable[[bytes], None], argv: list[str]) -> int:
    opts, dirs = options(argv)
    seeds = [p.read_bytes() for d in dirs for p in sorted(d.iterdir()) if p.is_file()]
    seeds = seeds or [b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n"]
    rng = random.Random(opts.get("seed", 0))
    runs, max_len = opts.get("runs", 100_000), opts.get("max_len", 4096)
    started = time.monotonic()
    for n in range(runs):
        data = seeds[n] if n < len(seeds) else mutate(rng, rng.choice(seeds), seeds, max_len)
        try:
            one_input(data)
        except Exception:
            name = f"crash-{hashlib.sha1(data).hexdigest()}"
            Path(name).write_bytes(data)
            print(f"failing input written to {name}", file=sys.stderr)
            raise
    print(f"Done {runs} runs in {int(time.monotonic() - started)} second(s)", file=sys.stderr)
    return 0


def main() -> int:
    try:
        if os.environ.get("WAKEPROXY_FUZZ_PLAIN"):
            raise ImportError("asked not to use it")
        import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as e:
        print(f"no atheris ({e}): random mutations of the corpus instead", file=sys.stderr)
        atheris = None
    if atheris is None:
        from fuzz.request_head import one_input

        return run_without_atheris(one_input, sys.argv)
    with atheris.instrument_imports(include=["wakeproxy", "fuzz"]):
        from fuzz.request_head import one_input
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())

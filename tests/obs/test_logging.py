"""Log output: JSON lines, the per-request access line, stdlib routing, the console format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from wakeproxy.dataplane.access import AccessRecord
from wakeproxy.obs import logging as obs_logging
from wakeproxy.obs.lines import OrderedStream, access_fields
from wakeproxy.obs.logging import JsonLines, access_sink, configure_logging

ISO_UTC = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def access_record(**overrides: Any) -> AccessRecord:
    """The data plane's own record, with typical values for a held request that has
    just ended (on the real monotonic clock)."""
    fields: dict[str, Any] = {
        "app": "hello", "host": "hello.localhost", "method": "GET",
        "path": "/index.html?page=2", "status": 200, "duration": 0.0123456, "held": 1.23456,
        "request_id": "4bf92f3577b34da6", "client": "127.0.0.1", "upstream": "127.0.0.1:41000",
        "bytes_in": 12, "bytes_out": 3456, "reason": None,
    }
    fields.update(overrides)
    fields.setdefault("started", time.monotonic() - fields["duration"])
    return AccessRecord(**fields)


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(obs_logging, "_output", None)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiohttp.access").disabled = False


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_access_line_is_one_json_object_with_every_field() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", cluster="dev", stream=buf)
    access_sink()(access_record())
    assert buf.getvalue().count("\n") == 1
    [line] = lines(buf)
    assert list(line)[:4] == ["timestamp", "level", "event", "cluster"]
    assert re.match(ISO_UTC, line["timestamp"])
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["cluster"] == "dev"
    expected = {
        "app": "hello", "host": "hello.localhost", "method": "GET",
        "path": "/index.html?page=2", "status": 200, "duration_ms": 12.35, "held_ms": 1234.56,
        "request_id": "4bf92f3577b34da6", "client": "127.0.0.1", "upstream": "127.0.0.1:41000",
        "bytes_in": 12, "bytes_out": 3456, "reason": None,
    }
    assert {k: line[k] for k in expected} == expected


def test_a_request_not_held_has_no_held_ms_and_unknown_hosts_have_no_app() -> None:
    buf = io.StringIO()
    sink = access_sink(JsonLines(buf))
    sink(access_record(app="", host="nowhere.example", status=404, held=None, upstream=None,
                reason="unknown host"))
    [line] = lines(buf)
    assert "held_ms" not in line
    assert "cluster" not in line
    assert line["app"] is None
    assert line["status"] == 404
    assert line["upstream"] is None
    assert line["reason"] == "unknown host"


def test_access_lines_are_the_bytes_json_writes_for_their_fields() -> None:
    """The hand-written line (its pieces remembered per route and connection, its
    numbers looked up rather than formatted) is byte for byte what `json.dumps` makes of
    the same fields, also when the remembered pieces change from line to line, for the
    named record and the plain tuple."""
    wall = 1_765_000_000.25
    records = [
        access_record(),
        access_record(held=None, duration=0.0005, status=304, bytes_out=0),
        access_record(app="", host="nowhere.example", method="PROPFIND", upstream=None,
                      held=None, status=404, reason="no app serves host 'nowhere.example'"),
        access_record(host="", method="", client="::1", path="/\u00e9\u2028\"\\\n",
                      request_id='x"\x01', reason="caf\u00e9 \u2603", duration=1.005),
        access_record(duration=0.000125, held=0.0),  # a tie, rounded as `round` does
        access_record(duration=2.5, held=3600.0),  # a second and more
        access_record(),  # the first route and connection again, from the memo
    ]
    # Every record ended at `wall`: the monotonic clock reads 0 when the batch is written.
    records = [r._replace(started=-r.duration) for r in records]
    for cluster in (None, "dev \u2603"):
        buf = io.StringIO()
        sink = JsonLines(buf, cluster=cluster, wall=lambda: wall, monotonic=lambda: 0.0)
        for r in records:
            sink.access(r)
            sink.access(tuple(r))  # a plain tuple, as the data plane hands over (with text)
        sink.flush()
        expected = []
        for r in records:
            fields: dict[str, Any] = {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.250000Z", time.gmtime(wall)),
                "level": "info", "event": "request",
            }
            if cluster is not None:
                fields["cluster"] = cluster
            fields.update(access_fields(r))
            expected += [json.dumps(fields, separators=(",", ":"))] * 2
        assert buf.getvalue().splitlines() == expected


def wire_row(record: AccessRecord) -> tuple[Any, ...]:
    """The row the data plane hands over for `record`: method, path and request id as the
    bytes read from the wire (latin-1)."""
    row = list(record)
    for i in (2, 3, 7):
        row[i] = row[i].encode("latin-1")
    return tuple(row)


ODD_ROWS = [  # fields that need JSON escaping, on their own and together
    {"path": '/q"uote'}, {"path": "/back\\slash"}, {"path": "/ctl\x00\x01\x1f\x7f"},
    {"path": "/latin-1 \xe9\xff"}, {"path": "/utf-8 caf\xc3\xa9"},
    {"path": "/tab\there\nnewline"}, {"request_id": 'id"\\\x02\xe9'},
    {"method": 'M"\xe9'}, {"host": 'h"o\\st\x01.\u00e9\u2603'}, {"app": 'a"p\\p\u2028'},
    {"reason": 'why "\\\n\x00 \u2603', "held": 0.25}, {"held": 12.345, "reason": None},
    {"client": '"::1\\', "upstream": '10.0.0.1:80"\\'},
    {"path": "/" + "x" * 5000 + "\x00", "bytes_in": 10_001, "bytes_out": 123_456_789},
]


@pytest.mark.parametrize("odd", [*ODD_ROWS, {k: v for o in ODD_ROWS for k, v in o.items()}])
def test_rows_from_the_wire_are_the_bytes_json_writes_for_their_fields(
    odd: dict[str, Any],
) -> None:
    """The data plane's rows (bytes read from the wire) in a batch with plain ones: the
    batch needing no escaping is written as it is, one needing it escaped, and either
    way each line is byte for byte `json.dumps` of the same fields (decoded latin-1)."""
    wall = 1_765_000_000.5
    plain = [access_record(held=None, path=f"/p{i}", request_id=f"r{i}") for i in range(3)]
    for records in ([access_record(**odd)], [plain[0], access_record(**odd), *plain[1:]],
                    plain):
        rows = [wire_row(r._replace(started=-r.duration)) for r in records]
        buf = io.StringIO()
        sink = JsonLines(buf, cluster="dev", wall=lambda: wall, monotonic=lambda: 0.0)
        for row in rows:
            sink.access(row)  # type: ignore[arg-type]
        sink.flush()
        expected = []
        for row in rows:
            fields: dict[str, Any] = {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.500000Z", time.gmtime(wall)),
                "level": "info", "event": "request", "cluster": "dev",
            }
            fields.update(access_fields(row))  # type: ignore[arg-type]
            expected.append(json.dumps(fields, separators=(",", ":")))
        assert buf.getvalue().splitlines() == expected
        assert json.loads(buf.getvalue().splitlines()[-1])["path"] == \
            records[-1].path


def test_milliseconds_are_the_text_json_writes_for_any_duration() -> None:
    """duration_ms is computed without formatting a float: for durations on both sides
    of every rounding half, and long ones, the text is still `json.dumps(round(...))`."""
    durations = [0.0, 1e-9, 0.0049999, 0.005, 99.9995, 99.99949999, 1234.5678, 1e12]
    for k in range(0, 2_000_000, 997):
        x = (k + 0.5) / 100_000.0  # the milliseconds' hundredths are a half
        for _ in range(3):
            x = math.nextafter(x, 0.0)
        for _ in range(5):
            durations.append(x)
            x = math.nextafter(x, 1.0)
    buf = io.StringIO()
    sink = JsonLines(buf, batch=100_000, wall=lambda: 1_765_000_000.0, monotonic=lambda: 0.0)
    for d in durations:
        sink.access(access_record(duration=d, held=d, started=-d))
    sink.flush()
    ms = re.compile(r'"(?:duration|held)_ms":([^,}]*)')
    got = [ms.findall(line) for line in buf.getvalue().splitlines()]
    assert got == [[json.dumps(round(d * 1000.0, 2))] * 2 for d in durations]


def test_the_timestamp_is_when_the_request_ended_on_the_wall_clock() -> None:
    buf = io.StringIO()
    clocks = {"wall": 1_765_000_000.0, "monotonic": 500.0}
    sink = JsonLines(buf, wall=lambda: clocks["wall"], monotonic=lambda: clocks["monotonic"])
    # Ended 4.5 s before the batch is written: started at 495.0, 0.5 s long.
    sink.access(access_record(started=495.0, duration=0.5))
    assert lines(buf)[0]["timestamp"] == "2025-12-06T05:46:35.500000Z"


def test_hostile_paths_stay_on_one_line() -> None:
    buf = io.StringIO()
    access_sink(JsonLines(buf))(access_record(path='/a\nb"c\\d\u2028\x00'))
    assert buf.getvalue().count("\n") == 1
    assert lines(buf)[0]["path"] == '/a\nb"c\\d\u2028\x00'


def test_access_lines_are_off_above_info() -> None:
    buf = io.StringIO()
    configure_logging("json", "warning", stream=buf)
    assert access_sink() is None  # below the level: no record is built
    structlog.get_logger().info("not shown")
    structlog.get_logger().warning("shown")
    assert [e["event"] for e in lines(buf)] == ["shown"]


def test_access_lines_can_be_turned_off_alone() -> None:
    for fmt in ("json", "console"):
        buf = io.StringIO()
        configure_logging(fmt, "info", stream=buf, access_lines=False)
        assert access_sink() is None  # off: the data plane builds no record at all
        structlog.get_logger().info("still shown")
        text = buf.getvalue()
        assert "still shown" in text and "request" not in text, (fmt, text)


def test_structlog_events_are_json_lines_with_timestamp_level_event_cluster() -> None:
    buf = io.StringIO()
    configure_logging("json", "debug", cluster="prod", stream=buf)
    structlog.get_logger("wakeproxy").info("started", listen="127.0.0.1:8080", apps=2)
    try:
        raise ValueError("broken")
    except ValueError:
        structlog.get_logger().exception("wake failed", app="hello")
    first, second = lines(buf)
    assert list(first)[:3] == ["timestamp", "level", "event"]
    assert first["event"] == "started"
    assert first["level"] == "info"
    assert first["cluster"] == "prod"
    assert first["listen"] == "127.0.0.1:8080"
    assert first["timestamp"].endswith("Z")
    assert second["level"] == "error"
    assert "ValueError: broken" in second["exception"]


def test_stdlib_logging_is_routed_and_aiohttp_access_logs_are_off() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", cluster="dev", stream=buf)
    logging.getLogger("asyncio").warning("Task was destroyed but it is pending: %s", "t1")
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET / HTTP/1.1" 200')
    logging.getLogger("some.lib").debug("below the level")
    [line] = lines(buf)
    assert line["event"] == "Task was destroyed but it is pending: t1"
    assert line["level"] == "warning"
    assert line["logger"] == "asyncio"
    assert line["cluster"] == "dev"


def test_reconfiguring_replaces_the_handler_instead_of_doubling_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    configure_logging("json", "info", stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert len(lines(second)) == 1


def test_console_format_is_for_humans() -> None:
    buf = io.StringIO()
    configure_logging("console", "info", stream=buf)
    access_sink()(tuple(access_record()))  # the plain tuple the data plane hands over
    structlog.get_logger().info("started", listen="127.0.0.1:8080")
    text = buf.getvalue()
    assert not text.startswith("{")
    assert "request" in text and "app=hello" in text and "status=200" in text
    assert "started" in text and "listen=127.0.0.1:8080" in text
    assert "\x1b[" not in text  # no colours when the stream is not a terminal


def test_bad_format_or_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "info", stream=io.StringIO())
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "loud", stream=io.StringIO())


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


async def test_inside_the_loop_lines_are_flushed_on_a_timer_not_per_line() -> None:
    stream = CountingStream()
    sink = access_sink(JsonLines(stream, flush_interval=0.05))
    for _ in range(100):
        sink(access_record())
    assert stream.flushes == 0
    await asyncio.sleep(0.15)
    assert stream.flushes == 1
    assert len(stream.getvalue().splitlines()) == 100
    sink(access_record())
    await asyncio.sleep(0.15)
    assert stream.flushes == 2


def test_a_loop_that_ended_before_its_flush_does_not_stall_later_lines() -> None:
    stream = CountingStream()
    out = JsonLines(stream, flush_interval=0.01)

    async def write(wait: float) -> None:
        out.emit("event", {"n": 1})
        await asyncio.sleep(wait)

    asyncio.run(write(0))  # this loop closes with its flush still pending
    asyncio.run(write(0.05))
    assert stream.flushes == 1


def test_outside_a_loop_every_line_is_flushed() -> None:
    stream = CountingStream()
    sink = access_sink(JsonLines(stream))
    sink(access_record())
    sink(access_record())
    assert stream.flushes == 2


async def test_access_line_costs_microseconds(tmp_path: Path) -> None:
    """Per-request budget: the target is < 5 µs a line; this guards against regressions.

    Runs inside a loop, as in production, so the stream is flushed on the timer."""
    with (tmp_path / "access.log").open("w") as out:
        sink = access_sink(JsonLines(out, cluster="dev"))
        record = access_record()
        n = 20000
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                sink(record)
            best = min(best, (time.perf_counter() - started) / n)
    assert best < 15e-6, f"{best * 1e6:.2f} µs per access line"


def test_app_output_lines_are_info_lines_with_app_and_stream_even_without_access_lines() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", cluster="dev", stream=buf, access_lines=False)
    obs_logging.app_output_log()("shop", "stderr", 'booting\nsaid "hi"')
    structlog.get_logger().info("after")  # flushes what waits, in order
    got = lines(buf)
    assert [(e["event"], e.get("app"), e.get("stream"), e["level"], e["cluster"]) for e in got] \
        == [("booting", "shop", "stderr", "info", "dev"),
            ('said "hi"', "shop", "stderr", "info", "dev"), ("after", None, None, "info", "dev")]
    assert all("timestamp" in e for e in got)
    buf = io.StringIO()
    configure_logging("json", "warning", stream=buf)
    obs_logging.app_output_log()("shop", "stdout", "not shown")
    structlog.get_logger().warning("shown")
    assert [e["event"] for e in lines(buf)] == ["shown"]


@pytest.mark.parametrize("text", [
    "L 1 1733460000\nL 2 1733460001", "one line", "", "\n\nempty around\n",
    'a\\nb (a backslash and n, not a newline)\nsaid "hi", "there"\n","',
    "tab\tbell\x07nul\x00 é ☃ \U0001F600\u2028", "trailing backslash\\\n\\\\\\n\\",
])
@pytest.mark.parametrize("cluster", [None, "dev"])
def test_a_block_of_output_lines_is_written_as_each_line_alone_would_be(
        text: str, cluster: str | None) -> None:
    """App output is echoed a pipe read at a time: byte for byte what one `emit` per line
    writes, whatever the lines hold (escapes, quotes, the join of a JSON list)."""
    fields = {"app": "shop", "stream": "stdout"}
    by_line, by_block = io.StringIO(), io.StringIO()
    one = JsonLines(by_line, cluster=cluster, wall=lambda: 1733460000.123456)
    for line in text.split("\n"):
        one.emit(line, fields)
    one.flush()
    block = JsonLines(by_block, cluster=cluster, wall=lambda: 1733460000.123456)
    block.lines_sink(fields)(text)
    block.flush()
    assert by_block.getvalue() == by_line.getvalue()
    assert [json.loads(x)["event"] for x in by_block.getvalue().splitlines()] == \
        text.split("\n")


async def test_a_broken_stream_never_fails_the_request_being_logged() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

        def flush(self) -> None:
            raise OSError("disk full")

    sink = access_sink(JsonLines(Broken(), batch=2))
    for _ in range(5):  # every second one writes a batch
        sink(access_record())


def test_lines_still_waiting_when_the_process_exits_are_written() -> None:
    """Inside a loop lines wait for their flush; a process that ends first still has them."""
    code = (
        "import asyncio, sys\n"
        "from wakeproxy.obs.lines import JsonLines\n"
        "out = JsonLines(sys.stdout, flush_interval=3600)\n"
        "async def main():\n"
        "    out.access(('a', 'a.test', 'GET', '/', 200, 0.001, None, 'r1', '127.0.0.1',"
        " None, 10, 20, None, 0.0))\n"
        "    out.emit('after', {})\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    got = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(e["event"], e.get("request_id")) for e in got] == [("request", "r1"), ("after", None)]


async def test_other_log_lines_come_after_the_access_lines_still_waiting() -> None:
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    sink = access_sink()
    sink(access_record(request_id="first"))  # waits for its flush, inside the loop
    structlog.get_logger().warning("then this")
    sink(access_record(request_id="last"))
    assert [(e["event"], e.get("request_id")) for e in lines(buf)] == [
        ("request", "first"), ("then this", None)]


def test_on_a_utf8_file_lines_are_the_same_bytes_and_stay_in_order_with_its_text() -> None:
    """Lines for a UTF-8 text stream (stdout, a file) go to the bytes under it, with no
    decode and encode per batch: the same bytes as on any other stream, after what was
    written to it as text before them and before what is written after."""
    wall = 1_765_000_000.5

    def write(stream: Any) -> None:
        out = JsonLines(stream, cluster="dev \u2603", wall=lambda: wall, monotonic=lambda: 0.0)
        ordered = OrderedStream(stream, out)
        for i in range(3):
            out.access(access_record(request_id=f"r{i}", path="/caf\u00e9", started=-0.25))
            out.emit("event \u2603", {"n": i})
            ordered.write(f"text {i}\n")
        out.access(wire_row(access_record(path="/last", started=-0.25)))  # type: ignore[arg-type]
        out.flush()

    text = io.StringIO()
    write(text)
    raw = io.BytesIO()
    utf8 = io.TextIOWrapper(raw, encoding="utf-8", write_through=False)
    write(utf8)
    assert raw.getvalue().decode() == text.getvalue()
    order = [json.loads(x).get("request_id") or json.loads(x)["event"] if x.startswith("{")
             else x for x in text.getvalue().splitlines()]  # fmt: skip
    assert order == ["r0", "event \u2603", "text 0", "r1", "event \u2603", "text 1", "r2",
                     "event \u2603", "text 2", "4bf92f3577b34da6"]


def test_a_stream_in_another_encoding_is_written_text() -> None:
    raw = io.BytesIO()
    utf16 = io.TextIOWrapper(raw, encoding="utf-16")
    out = JsonLines(utf16)
    out.access(access_record(path="/caf\u00e9"))
    out.flush()
    [line] = raw.getvalue().decode("utf-16").splitlines()
    assert json.loads(line)["path"] == "/caf\u00e9"

"""A test app that starts in milliseconds: stdlib sockets and threads, run with `python -S -E`.

Reliability tests wake apps hundreds of times, so the app's own start-up must be cheap
(aiohttp alone takes ~300 ms to import; this file imports only socket, threading and
hashlib). One thread per connection; HTTP/1.1 keep-alive; SIGTERM's default action ends
it at once. Environment: PORT (required), APP_NAME, START_LOG (a file each start appends
its pid to), START_DELAY (seconds before listening), EXIT_AFTER (exit after answering
that many requests), CRASH (exit with code 3 at once, after a line on stderr),
CRASH_AFTER (listen, then exit with code 4 after that many seconds).

Routes: GET /hello/... answers "<name> <path>"; POST /echo answers the body it got;
GET /download?bytes=N[&close=1] streams N bytes (length-delimited, or delimited by close);
GET /ws is a WebSocket echo; GET /hang never answers; GET /exit answers, then exits;
GET /pid answers the pid.
"""

import base64
import contextlib
import hashlib
import os
import socket
import sys
import threading
import time

NAME = os.environ.get("APP_NAME", "app")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PATTERN = bytes(range(256)) * 256  # 64 KiB; byte i of a download is i % 256
MAX_HEAD = 65536

answered = 0
answered_lock = threading.Lock()
exit_after = int(os.environ.get("EXIT_AFTER", "0"))


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def read_until(self, sep, limit):
        while True:
            i = self.buf.find(sep)
            if i != -1:
                out, self.buf = self.buf[:i], self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit:
                raise Closed()
            self.fill()

    def read_exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def read_request(c):
    head = c.read_until(b"\r\n\r\n", MAX_HEAD).decode("latin-1")
    lines = head.split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower().endswith("chunked"):
        parts = []
        while True:
            size = int(c.read_until(b"\r\n", 1024).split(b";")[0], 16)
            if size == 0:
                while c.read_until(b"\r\n", MAX_HEAD):  # trailer fields, then the blank line
                    pass
                break
            parts.append(c.read_exactly(size))
            c.read_exactly(2)
        body = b"".join(parts)
    elif "content-length" in headers:
        body = c.read_exactly(int(headers["content-length"]))
    return method, target, version, headers, body


def respond(c, status, body, *, close=False, extra=""):
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}"
    if close:
        head += "Connection: close\r\n"
    c.sock.sendall(head.encode("latin-1") + b"\r\n" + body)


def download(c, query, method):
    args = dict(p.partition("=")[::2] for p in query.split("&") if p)
    size = int(args.get("bytes", "0"))
    by_close = args.get("close") == "1"
    framing = "" if by_close else f"Content-Length: {size}\r\n"
    c.sock.sendall(f"HTTP/1.1 200 OK\r\n{framing}Connection: close\r\n\r\n".encode())
    if method == "HEAD":
        return
    sent = 0
    while sent < size:
        n = min(len(PATTERN), size - sent)
        c.sock.sendall(PATTERN[:n])
        sent += n


def websocket(c, headers):
    key = headers.get("sec-websocket-key", "").encode()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
    c.sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
    )
    while True:
        b0, b1 = c.read_exactly(2)
        opcode, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = int.from_bytes(c.read_exactly(2), "big")
        elif n == 127:
            n = int.from_bytes(c.read_exactly(8), "big")
        mask = c.read_exactly(4) if b1 & 0x80 else b"\0\0\0\0"
        payload = bytes(x ^ mask[i % 4] for i, x in enumerate(c.read_exactly(n)))
        if opcode == 8:
            send_frame(c, 8, payload[:2])
            return
        if opcode == 9:
            send_frame(c, 10, payload)
        elif opcode in (1, 2):
            send_frame(c, opcode, payload)


def send_frame(c, opcode, payload):
    n = len(payload)
    if n < 126:
        size = bytes([n])
    elif n < 65536:
        size = bytes([126]) + n.to_bytes(2, "big")
    else:
        size = bytes([127]) + n.to_bytes(8, "big")
    c.sock.sendall(bytes([0x80 | opcode]) + size + payload)


def count_answer():
    global answered
    with answered_lock:
        answered += 1
        done = exit_after and answered >= exit_after
    if done:
        os._exit(0)


def serve(sock):
    c = Conn(sock)
    try:
        while True:
            method, target, version, headers, body = read_request(c)
            path, _, query = target.partition("?")
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            if path.startswith("/hello"):
                respond(c, 200, f"{NAME} {target}".encode(), close=close)
            elif path == "/echo":
                respond(c, 200, body, close=close)
            elif path == "/download":
                download(c, query, method)
                return
            elif path == "/ws" and headers.get("upgrade", "").lower() == "websocket":
                websocket(c, headers)
                return
            elif path == "/hang":
                while True:
                    time.sleep(3600)
            elif path == "/exit":
                respond(c, 200, b"bye", close=True)
                os._exit(0)
            elif path == "/pid":
                respond(c, 200, str(os.getpid()).encode(), close=close)
            else:
                respond(c, 404, b"no such route", close=close)
            count_answer()
            if close:
                return
    except (Closed, OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def main():
    marker = os.environ.get("START_LOG")
    if marker:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
    if os.environ.get("CRASH"):
        print(f"{NAME}: crashing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)
    delay = float(os.environ.get("START_DELAY", "0"))
    if delay:
        time.sleep(delay)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(os.environ["PORT"])))
    listener.listen(1024)
    crash_after = float(os.environ.get("CRASH_AFTER", "0"))
    if crash_after:
        threading.Timer(crash_after, os._exit, (4,)).start()
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()

"""A fake Telegram Bot API on 127.0.0.1 that speaks the real contract.

- `POST /bot<TOKEN>/sendMessage` and `/getMe`, `/getChat`: 200 `{"ok": true, "result": ...}`.
- A wrong token: 401 `{"ok": false, "error_code": 401, "description": "Unauthorized"}`.
- An unknown chat: 400 `Bad Request: chat not found`.
- Scripted answers per message (matched by a marker in the text): "429:<s>" (with parameters.retry_after),
  "401", "400", "500", "drop" (close the connection with no answer), "hang" (hold the request until released),
  "trickle:<s>" (accept the message, then send the whole answer one byte every <s> seconds: a per-read timeout
  never fires; `Call.ended` records when the client gave up or the answer was complete).
  "delay:<s>" (a slow Bot API: answer 200 after <s> seconds; the call is recorded once answered),
  "broken" (a 200 whose chunked body has a negative size, then the connection closed).
- `tls=True` serves https with the self-signed certificate in tests/tls (for 127.0.0.1; a client trusts it
  through SSL_CERT_FILE). `drop_connections()` closes every kept connection, as a server ending idle
  keep-alive connections does.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TLS_CERT = Path(__file__).parent / "tls" / "cert.pem"  # self-signed, for 127.0.0.1 and localhost
TLS_KEY = Path(__file__).parent / "tls" / "key.pem"


@dataclass
class Call:
    method: str
    token: str
    payload: dict[str, Any]
    answer: str
    at: float = field(default_factory=time.monotonic)
    ended: float | None = None
    port: int = 0  # the client's port: one per connection
    replied: bool = False  # the whole answer was written (the client may still have died before reading it)


class FakeTelegram:
    def __init__(self, token: str, chat_id: str, *, tls: bool = False) -> None:
        self.token, self.chat_id = token, chat_id
        self._open: set[socket.socket] = set()  # the server's side of every connection still open
        self.calls: list[Call] = []
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.latency = 0.0  # seconds before answering a sendMessage
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(TLS_CERT, TLS_KEY)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTelegram:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def drop_connections(self) -> None:
        """Close the server's side of every open connection (the clients' kept ones go stale)."""
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def script(self, marker: str, answers: list[str]) -> None:
        """Answer the next messages whose text contains `marker` with `answers`, in order, then "ok"."""
        with self._lock:
            self._scripts[marker].extend(answers)

    def delivered(self, marker: str) -> list[Call]:
        """Messages Telegram accepted (answered 200) whose text contains `marker`."""
        with self._lock:
            return [
                c
                for c in self.calls
                if c.method == "sendMessage" and c.answer == "ok" and marker in c.payload.get("text", "")
            ]

    def attempts(self, marker: str) -> list[Call]:
        with self._lock:
            return [
                c for c in self.calls if c.method == "sendMessage" and marker in c.payload.get("text", "")
            ]

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return bool(predicate())

    def _next_answer(self, text: str) -> str:
        with self._lock:
            for marker, answers in self._scripts.items():
                if marker in text and answers:
                    return answers.popleft()
        return "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real Bot API
            # Headers and body go out in two writes: with Nagle, the body waits for the client's delayed
            # ACK (40 ms on Linux) on a kept connection, which capped a worker at ~22 msg/s.
            disable_nagle_algorithm = True

            def handle_one_request(self) -> None:
                """The request line and headers read without http.client's email parser: it was most of the
                fake's own time per request (with a `sleep(0)` for no latency, ~0.17 ms of the ~0.3 ms a
                worker waited on each answer). Only Content-Length and Connection matter to the fake."""
                try:
                    line = self.rfile.readline(65537)
                    words = line.decode("latin-1").split()
                    if len(words) != 3:  # the client closed the connection (b""), or not HTTP/1.x
                        self.close_connection = True
                        return
                    self.raw_requestline, self.requestline = line, " ".join(words)
                    self.command, self.path, self.request_version = words
                    headers: dict[str, str] = {}
                    while (raw := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                        name, _, value = raw.decode("latin-1").partition(":")
                        headers[name.strip().lower()] = value.strip()
                    self.headers = headers  # type: ignore[assignment]
                    closes = headers.get("connection", "").lower()
                    self.close_connection = closes == "close" or (
                        self.request_version != "HTTP/1.1" and closes != "keep-alive"
                    )
                    handler = getattr(self, "do_" + self.command, None)
                    if handler is None:
                        self._reply(
                            405, {"ok": False, "error_code": 405, "description": "Method Not Allowed"}
                        )
                        return
                    handler()
                    self.wfile.flush()
                except OSError:  # reset, or timed out, under a client that died
                    self.close_connection = True

            def log_message(self, *_: Any) -> None:  # keep test output quiet
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._open.add(self.connection)

            def finish(self) -> None:
                with fake._lock:
                    fake._open.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                self._serve({})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                try:
                    raw = self.rfile.read(length) if length else b"{}"
                except OSError:  # the client died mid-request (a killed worker)
                    self.close_connection = True
                    return
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {}
                self._serve(payload if isinstance(payload, dict) else {})

            def _serve(self, payload: dict[str, Any]) -> None:
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or not parts[0].startswith("bot"):
                    self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                    return
                token, method = parts[0][3:], parts[1]
                answer = "ok"
                if token != fake.token:
                    answer = "401"
                elif method == "sendMessage":
                    if fake.latency:  # sleep(0) alone cost ~0.08 ms per answer
                        time.sleep(fake.latency)
                    answer = fake._next_answer(str(payload.get("text", "")))
                    if answer == "ok" and str(payload.get("chat_id")) != fake.chat_id:
                        answer = "400"
                elif method == "getChat" and str(payload.get("chat_id")) != fake.chat_id:
                    answer = "400"
                if answer.startswith("delay:"):
                    time.sleep(float(answer.partition(":")[2]))
                    answer = "ok"
                call = Call(method, token, payload, answer, port=self.client_address[1])
                with fake._lock:
                    fake.calls.append(call)
                try:
                    call.replied = self._answer(method, answer, payload)
                finally:
                    call.ended = time.monotonic()

            def _answer(self, method: str, answer: str, payload: dict[str, Any]) -> bool:
                if answer == "ok":
                    result: Any = {"id": 4242, "is_bot": True, "first_name": "p419", "username": "p419_bot"}
                    if method == "sendMessage":
                        result = {"message_id": len(fake.calls), "chat": {"id": payload.get("chat_id")}}
                        result["text"] = payload.get("text")
                    elif method == "getChat":
                        result = {"id": payload.get("chat_id"), "type": "private"}
                    return self._reply(200, {"ok": True, "result": result})
                if answer.startswith("429"):
                    wait = int(answer.partition(":")[2] or 1)
                    return self._reply(
                        429,
                        {
                            "ok": False,
                            "error_code": 429,
                            "description": f"Too Many Requests: retry after {wait}",
                            "parameters": {"retry_after": wait},
                        },
                    )
                if answer == "401":
                    return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                if answer == "400":
                    return self._reply(
                        400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
                    )
                if answer == "500":
                    return self._reply(
                        500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
                    )
                if answer.startswith("trickle"):
                    pause = float(answer.partition(":")[2] or 0.7)
                    result = {"message_id": len(fake.calls), "chat": {"id": payload.get("chat_id")}}
                    data = json.dumps({"ok": True, "result": result}).encode()
                    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
                    try:
                        for byte in head.encode() + data:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            if fake.release.wait(pause):
                                break
                    except OSError:
                        pass  # the client gave up
                    self.close_connection = True
                    return False
                if answer == "broken":  # a chunk size no parser can take (a broken proxy in between)
                    with contextlib.suppress(OSError):
                        self.wfile.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n-5\r\n\r\n")
                        self.wfile.flush()
                if answer == "hang":
                    fake.release.wait(60)
                # "drop", "broken", or a released hang: close the connection without an answer.
                self.close_connection = True
                self.connection.close()
                return False

            def _reply(self, code: int, body: dict[str, Any]) -> bool:
                data = json.dumps(body).encode()
                try:
                    self.send_response(code)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the client is gone (a worker killed while we answered)
                    return False
                return True

        return Handler

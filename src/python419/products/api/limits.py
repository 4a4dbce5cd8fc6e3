"""A request body size limit as plain ASGI middleware: 413 before a large body is read into memory."""

from __future__ import annotations

import json
from typing import Any

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = None, False
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True  # it wins over a Content-Length (RFC 9112 6.3): the body may be longer
        if declared is not None and declared.isdigit():
            if int(declared) > self.max_bytes:
                await self._reject(send)
                return
            if not chunked:
                # The server reads exactly the declared length as the body (h11): nothing to count, and no
                # wrapper on every receive and send of the request (the POST path's common case).
                await self.app(scope, receive, send)
                return
        seen, started, rejected = 0, False, False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen, rejected
            message = dict(await receive())
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    # A chunked body that grew too large: answer 413 ourselves and tell the app the
                    # client went away, so it stops reading and its own response is dropped.
                    rejected = True
                    await self._reject(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

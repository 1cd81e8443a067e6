"""No request body is read before its sender is known, and none is read without a cap.

FastAPI reads and parses a route's declared body *before* it runs the route's
dependencies, so an ``X-API-Key`` dependency came too late: a 200 MB JSON body to an
admin route was buffered and parsed, then refused with 401. This pure-ASGI middleware
decides from the headers alone, before the app can read a byte:

* the webhook authenticates inside its body (passphrase or
  signature) and reads at most 64 KiB itself: passed through untouched;
* any other request that carries a body must carry the admin key (``X-API-Key``, the
  only credential that goes with a body): else 401 (503 when no key is configured);
* and at most ``TRADEROPS_ADMIN_MAX_BODY_BYTES``: a larger ``Content-Length`` is 413
  at once, a chunked body is counted as it is read and cut off with 413.

The rest of a refused body is left to the protocol (app/datahub/connguard.py): it
discards it for a short linger, so the client reads its 401 or 413 rather than a
connection reset, then closes; reading time is bounded there too.
"""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.datahub.routers.webhook import PATH as WEBHOOK_PATH
from app.datahub.security import constant_time_equals


class BodyRefused(Exception):
    """Raised inside the app's ``receive`` once the body outgrew its cap."""


def _answer(status: int, detail: str, *extra: tuple[bytes, bytes]) -> tuple[Message, Message]:
    body = orjson.dumps({"detail": detail})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class RequestBodyGuard:
    """Authenticate and size-check every request body before the app reads it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        key = settings.admin_api_key
        self.admin_key = key.get_secret_value() if key is not None else None
        self.max_body = settings.admin_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        api_key = ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else None
                chunked = chunked or length is None  # unparseable: count what arrives
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
        if not chunked and not length:  # no body: nothing to protect
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(api_key, length)
        if refusal is not None:
            for message in refusal:
                await send(message)
            return
        await self.capped(scope, receive, send)

    def refusal(self, api_key: str, length: int | None) -> tuple[Message, Message] | None:
        if self.admin_key is None:
            return _answer(503, "a request body needs the admin API: set TRADEROPS_ADMIN_API_KEY")
        if not api_key or not constant_time_equals(api_key, self.admin_key):
            return _answer(401, "missing or wrong X-API-Key", (b"www-authenticate", b"ApiKey"))
        if length is not None and length > self.max_body:
            return _answer(413, f"body too large (max {self.max_body} bytes)")
        return None

    async def capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that stops the body at the cap (chunked bodies)."""
        received = 0
        answered = False  # by us, with 413: the app's own answer is dropped
        started = False

        async def counting_receive() -> Message:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    if not started:
                        answered = True
                        for reply in _answer(413, f"body too large (max {self.max_body} bytes)"):
                            await send(reply)
                    raise BodyRefused
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyRefused:  # answered above, or mid-answer: uvicorn closes the connection
            pass
        except ClientDisconnect:
            if not answered:
                raise

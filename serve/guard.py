"""The guard around every request: a write (an empty one too) only in the media type its
endpoint reads (JSON, CSV for a purchase log, an image to search by), so that no web page
can post on the operator's behalf; bodies over their limit refused while they stream in;
one log line; a one-line 500 for anything unexpected. The API key is a FastAPI dependency
(serve/dependencies.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Final

from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("fashionrec.serve")

MAX_BODY: Final = 1_000_000  # bytes a request body may have (1 MB)
MAX_UPLOAD: Final = 64_000_000  # a purchase log sent whole (64 MB)
MAX_PHOTO: Final = 16_000_000  # a photo to search by (16 MB)
JSON: Final = "application/json"
CSV: Final = "text/csv"
IMAGES: Final = ("image/jpeg", "image/png", "image/webp")
# the endpoints that read another media type than JSON, and their limits
UPLOADS: Final = {"/purchases/import": ((CSV,), MAX_UPLOAD), "/search": (IMAGES, MAX_PHOTO)}
WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def send_error(
    send: Send, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `{"error": message}` with this status."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def media_type(scope: Scope) -> str:
    """The request's media type, without parameters (`charset=utf-8`), lower case."""
    given = bytes(dict(scope["headers"]).get(b"content-type", b"")).decode("latin-1")
    return given.partition(";")[0].strip().lower()


class Guard:
    """Around every request: media type and size of a write's body, one log line, and a
    one-line 500 for anything unexpected."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    async def body(scope: Scope, receive: Receive, limit: int) -> tuple[bytes | None, bool]:
        """The whole request body, or None when it is over the limit; and whether the
        client went away while sending it."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None, False
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None, False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        query = scope.get("query_string", b"").decode("latin-1")
        target = str(scope["path"]) + (f"?{query}" if query else "")
        try:
            if scope["method"] in WRITES:
                wanted, limit = UPLOADS.get(str(scope["path"]), ((JSON,), MAX_BODY))
                body, gone = await self.body(scope, receive, limit)
                if gone:
                    return
                if body is None:
                    await send_error(sending, 413, f"request body over {limit} bytes")
                    return
                if media_type(scope) not in wanted:  # an empty body too: a page's form
                    # or a no-cors fetch may post nothing, but never declare JSON
                    given = media_type(scope) or "none"
                    await send_error(
                        sending,
                        415,
                        f"send the body as Content-Type: {' or '.join(wanted)} (got {given})",
                    )
                    return
                receive = replay(body, receive)
            await self.app(scope, receive, sending)
        except Exception:
            logger.exception("%s %s failed", scope["method"], target)
            if not status:
                await send_error(sending, 500, "internal error; the server log has the details")
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            logger.info("%s %s %s %.1f ms", scope["method"], target, status or "-", elapsed)


class TrustedHosts:
    """Only requests whose Host header names one of `hosts` (Starlette's check), refused as
    every other refusal is: `{"error": …}`."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app, self.hosts = app, list(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def allowed(scope: Scope, receive: Receive, _: Send) -> None:
            await self.app(scope, receive, send)

        async def refused(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = bytes(dict(scope["headers"]).get(b"host", b"")).decode("latin-1")
                await send_error(
                    send,
                    400,
                    f"Host {given or '(none)'} is not answered here; use one of "
                    f"{', '.join(self.hosts)}",
                )

        check = TrustedHostMiddleware(allowed, allowed_hosts=self.hosts, www_redirect=False)
        await check(scope, receive, refused)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then waits as the original does."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again

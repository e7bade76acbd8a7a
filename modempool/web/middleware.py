"""Two pure ASGI middlewares: the request body limit (413 before the body is read when
Content-Length says so, or as soon as a streamed body passes it) and the request counter
by route and status for /metrics."""

from __future__ import annotations

import json
from typing import Any

from modempool.web.problems import PROBLEM_TYPE


class BodyTooLarge(Exception):
    pass


async def _send_problem(send: Any, status: int, title: str, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", PROBLEM_TYPE.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: Any, max_body: int) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the request body is larger than the limit of {self.max_body} bytes ([http] max_body)"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_problem(send, 413, "Request body too large", detail)
                    return
        seen, started, refused = 0, False, False

        async def counted_receive() -> dict:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    # Answered here: the framework turns an error raised while it reads a
                    # body into its own 400 ("There was an error parsing the body").
                    if not started and not refused:
                        refused = True
                        await _send_problem(send, 413, "Request body too large", detail)
                    raise BodyTooLarge()
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; what the app answers to the broken read does not
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not refused:
                raise


class CountRequests:
    """`modempool_http_requests_total{route, method, status}`; the route is the template
    (`/v1/messages/{message_id}`), so ids do not make new series."""

    def __init__(self, app: Any, counter: Any) -> None:
        self.app, self.counter = app, counter

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def tracked_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.counter.labels(path, scope.get("method", ""), str(status)).inc()

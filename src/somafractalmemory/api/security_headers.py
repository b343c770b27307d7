"""The security headers of the pages the app serves to browsers (``/ui``, ``/docs``,
``/redoc``): a Content-Security-Policy of each page's own, and the same framing, sniffing and
referrer rules for all."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class SecurityHeadersMiddleware:
    """Set ``policy`` as the Content-Security-Policy, with the related headers, on every
    response under one of ``prefixes`` (the prefix itself or a path below it)."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...], policy: str) -> None:
        self.app = app
        self._prefixes = prefixes
        self._headers = (
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        )

    def _covers(self, path: str) -> bool:
        return any(path == prefix or path.startswith(f"{prefix}/") for prefix in self._prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._covers(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        names = {name for name, _ in self._headers}

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k not in names]
                message["headers"] = [*headers, *self._headers]
            await send(message)

        await self.app(scope, receive, with_headers)

"""What every request passes before a route sees it (docs/serving.md, "Security"): its Host header
names this server (a web page cannot reach it through DNS rebinding), it carries the token when
the server has one, and a ``POST /translate`` body is declared JSON (so no page can send it
without a CORS preflight) -- and the socket the server listens on."""
from __future__ import annotations

import errno
import hmac
import ipaddress
import re
import socket

from starlette.datastructures import Headers

from transduce.errors import TransduceError
from transduce.serve.requests import ApiError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header: ``Example.org:80`` -> ``example.org``, ``[::1]:80`` -> ``::1``."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return (host.partition(":")[0] if host.count(":") == 1 else host).rstrip(".")


def check_token(token: str | None) -> None:
    if token is not None and not re.fullmatch(r"[!-~]+", token):
        raise TransduceError("the token must be printable ASCII without spaces (it travels in an "
                             "HTTP header); e.g. python -c 'import secrets; print(secrets."
                             "token_urlsafe())'")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (0: any free port), for uvicorn to serve on; a port in
    use or an unknown host is a one-line :class:`TransduceError`."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port,
                                                             type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise TransduceError(f"cannot listen on {host}:{port} ({e.strerror}); check "
                             "--host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        hint = ("another server listens there: stop it or choose another --port"
                if e.errno == errno.EADDRINUSE else "choose another --host or --port")
        raise TransduceError(f"cannot listen on {host}:{port} ({e.strerror}); {hint}") from None
    return sock


class FrontDoor:
    """ASGI middleware answering the JSON error of a request that fails a check (403 for a Host
    not allowed, 401 without the token, 415 for a body not declared JSON, or for ``/caption``
    an image); ``hosts``: the names
    a Host header may give ("*": any) besides IP addresses, which no other site can make a
    browser send; ``token``: None, or what ``Authorization: Bearer`` must carry on every path
    but the page's."""

    def __init__(self, app, *, hosts: frozenset[str], token: str | None):
        self.app, self.hosts = app, frozenset(h.lower() for h in hosts)
        self.token = None if token is None else token.encode()

    async def __call__(self, scope, receive, send):
        error = self.check(scope) if scope["type"] == "http" else None
        if error is None:
            return await self.app(scope, receive, send)
        await error.response()(scope, receive, send)

    def allows(self, host: str) -> bool:
        if "*" in self.hosts or host in self.hosts:
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True

    def check(self, scope) -> ApiError | None:
        headers, path = Headers(scope=scope), scope["path"]
        host = host_name(headers.get("host", ""))
        if not self.allows(host):
            return ApiError(403, "host_not_allowed", f"this server does not answer to the name "
                            f"{host[:100]!r}; start it with --allow-host {host[:100]} if clients "
                            "use that name")
        if self.token and not (path == "/" or path.startswith("/static/")):  # the page: no data
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("latin-1"), self.token):
                return ApiError(401, "unauthorized", "this server needs its token: send the "
                                "header 'Authorization: Bearer <token>' (the web page: open "
                                "/#token=<token>)", headers={"WWW-Authenticate": "Bearer"})
        kind = headers.get("content-type", "").partition(";")[0].strip().lower()
        if scope["method"] == "POST" and path == "/translate" and kind != "application/json":
            return ApiError(415, "unsupported_media_type", "send the body as JSON, with "
                            "the header 'Content-Type: application/json'")
        # an image's type: what no cross-site form can send without the browser asking first
        if scope["method"] == "POST" and path == "/caption" and not kind.startswith("image/"):
            return ApiError(415, "unsupported_media_type", "send the image file as the body, "
                            "with its type, e.g. 'Content-Type: image/png'")
        return None

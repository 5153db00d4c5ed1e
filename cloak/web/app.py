"""The page's routes (Starlette) and the server (uvicorn) behind ``cloak serve``.

Routes (every ``/api`` route needs the session cookie and answers 403 without it):

- ``GET /``: the page; a browser without a valid session gets a new one (cookie
  ``cloak_session``: random, HttpOnly, SameSite=Strict);
- ``GET /static/...``: the page's script and style sheet (package data, nothing external);
- ``GET /api/state``: what the page shows (:meth:`~cloak.web.sessions.Session.state`);
- ``POST /api/photos``: upload photos (multipart field ``photos``), one outcome per file;
- ``POST /api/protect``, ``POST /api/reset``: start a run, or delete everything;
- ``GET /api/photos/{id}/before``, ``/after``: PNG previews of a photo and its protected copy;
- ``GET /api/download/protected.zip``, ``/api/download/person.cloak``: the results.

Every response carries a strict Content-Security-Policy (only this server's own script, style
and images); requests naming another host (DNS rebinding) and cross-site form posts are
refused; the access log is off, so no URL, file name or photo is ever logged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloak.errors import ImageError
from cloak.web.files import preview_png
from cloak.web.sessions import Session, SessionBusy, SessionStore
from cloak.web.uploads import UploadError, receive_files

__all__ = ["COOKIE", "LOCAL_HOSTS", "create_app", "is_local", "serve"]

#: The session cookie's name.
COOKIE = "cloak_session"
#: Host names a locally bound server answers to (anything else is refused: DNS rebinding).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_STATIC = Path(__file__).with_name("static")
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def is_local(host: str) -> bool:
    """True when ``host`` is this machine only (a loopback address or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host of a Host header, without its port (``[::1]:80`` -> ``::1``)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class _Guard:
    """ASGI middleware: refuse unknown Host headers (when ``hosts`` is given) and cross-site
    posts, and add :data:`_SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp, hosts: Collection[str] | None) -> None:
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        refusal = None
        if self.hosts is not None and _host_name(host) not in self.hosts:
            refusal = "this server answers to localhost only"
        elif scope["method"] not in ("GET", "HEAD") and "origin" in headers \
                and urlsplit(headers["origin"]).netloc != host:
            refusal = "cross-site requests are refused"
        if refusal is not None:
            await JSONResponse({"error": refusal}, 403)(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(_SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_secured)


def create_app(store: SessionStore, hosts: Collection[str] | None = LOCAL_HOSTS,
               on_startup: Callable[[], None] | None = None) -> Starlette:
    """The page's Starlette app over ``store`` (closed when the app shuts down).

    Args:
        store: the sessions.
        hosts: Host names to answer to (None: any, for a server bound to a public address).
        on_startup: called when the server starts (its signal handlers are in place then).
    """

    def session_of(request: Request) -> Session:
        session = store.get(request.cookies.get(COOKIE))
        if session is None:
            raise HTTPException(403, "no session (it ended, or the server restarted): reload "
                                     "the page")
        return session

    async def page(request: Request) -> Response:
        response = FileResponse(_STATIC / "index.html", media_type="text/html")
        if store.get(request.cookies.get(COOKIE)) is None:
            try:
                session = store.create()
            except SessionBusy as err:
                return JSONResponse({"error": str(err)}, 503)
            response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict")
        return response

    async def state(request: Request) -> Response:
        return JSONResponse(session_of(request).state())

    async def upload(request: Request) -> Response:
        session = session_of(request)
        if session.busy:
            raise HTTPException(409, "wait until the protection run has finished")
        async with session.upload_lock:
            try:
                received = await receive_files(request.headers.get("content-type", ""),
                                               request.stream(), session.incoming,
                                               store.limits.max_file_bytes,
                                               session.remaining_bytes())
            except UploadError as err:
                raise HTTPException(400, str(err)) from None
            outcomes = await run_in_threadpool(session.admit, received)
        return JSONResponse({"outcomes": outcomes, "state": session.state()})

    async def protect(request: Request) -> Response:
        session = session_of(request)
        try:
            await run_in_threadpool(session.protect, store.settings, store.gate)
        except SessionBusy as err:
            raise HTTPException(409, str(err)) from None
        return JSONResponse(session.state())

    async def reset(request: Request) -> Response:
        session = session_of(request)
        await run_in_threadpool(session.reset)
        return JSONResponse(session.state())

    async def preview(request: Request) -> Response:
        session = session_of(request)
        upload = session.uploads.get(request.path_params["photo"])
        which = request.path_params["which"]
        if upload is None or which not in ("before", "after"):
            raise HTTPException(404, "no such photo")
        path = upload.path if which == "before" else session.output_of(upload.id)
        if path is None:
            raise HTTPException(404, "no protected copy of this photo")
        try:
            png = await run_in_threadpool(preview_png, path)
        except ImageError:
            raise HTTPException(404, "this photo cannot be shown") from None
        return Response(png, media_type="image/png")

    async def download(request: Request) -> Response:
        session = session_of(request)
        kind = request.path_params["file"]
        if kind == "protected.zip":
            path = await run_in_threadpool(session.protected_zip)
            media = "application/zip"
        elif kind == "person.cloak":
            path, media = session.mask_file(), "application/octet-stream"
        else:
            path = None
        if path is None:
            raise HTTPException(404, "nothing to download yet")
        return FileResponse(path, media_type=media, filename=kind)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            if on_startup is not None:
                on_startup()
            yield
        finally:
            await run_in_threadpool(store.close)

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/api/photos", upload, methods=["POST"]),
        Route("/api/protect", protect, methods=["POST"]),
        Route("/api/reset", reset, methods=["POST"]),
        Route("/api/photos/{photo:int}/{which}", preview),
        Route("/api/download/{file}", download),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: http_error})
    app.add_middleware(_Guard, hosts=hosts)
    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0 = any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(store: SessionStore, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve the page on ``host``:``port`` until Ctrl-C (or SIGTERM); ``store`` is closed
    (every run stopped, every session folder deleted) on the way out, whatever happens.

    Args:
        store: the sessions.
        host: address to bind; a non-local one answers to any Host header.
        port: TCP port, 0 for any free one.
        announce: called with the page's URL once the server has started (from then on,
            Ctrl-C shuts it down cleanly).

    Raises:
        OSError: the address cannot be bound (in use, not this machine's).
    """
    try:
        sock = _listen(host, port)
        try:
            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            app = create_app(store, LOCAL_HOSTS if is_local(host) else None,
                             lambda: announce(f"http://{shown}:{bound}/"))
            config = uvicorn.Config(app, access_log=False, log_level="warning",
                                    server_header=False, lifespan="on")
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        store.close()

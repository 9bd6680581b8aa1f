"""The viewer's web app: a Starlette app over a :class:`~mieruka.serve.viewer.Viewer`, served by uvicorn.

Routes: the page and its static files; ``/api/info`` and ``/api/colormaps`` (sent once);
``/api/files`` (the served folder's images); ``/api/upload`` (a photo, multipart, size-limited while it
is read) and ``/api/open`` (a photo of the folder by name); ``/api/photos/ID.png`` (the display copy);
``/api/explain`` (maps as 8-bit PNGs); ``/fonts/`` (the fonts mieruka draws labels with). Every error
is a JSON ``{"error": message}`` with a 4xx status, shown in the page; nothing unexpected leaks a
traceback to the page (it goes to the server's log).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import fonts
from ..errors import MierukaError
from ..images import ImageError, decode_image, load_image
from ..report.webfonts import browser_font
from .folder import Folder, NotFound, PathRefused
from .viewer import PhotoGone, Viewer, colormap_tables

STATIC = Path(__file__).parent / "static"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_FORM_FIELDS = 8
LOG = logging.getLogger("mieruka.serve")
# The page loads only its own files: no CDN, no inline script, maps as data: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class TooLarge(MierukaError):
    """An upload over the size limit, found while it is read."""


def create_app(
    viewer: Viewer,
    folder: str | Path | None = None,
    *,
    max_upload_bytes: int = 20 * 1024 * 1024,
    host: str = "127.0.0.1",
) -> Starlette:
    """The viewer's app. Requests must name `host` (or localhost) in their Host header, so a web page
    elsewhere cannot reach a local viewer by rebinding its own domain name to 127.0.0.1."""
    served = Folder(folder) if folder is not None else None
    info = {
        **viewer.info(),
        "folder": served.root.name if served is not None else None,
        "max_upload_bytes": max_upload_bytes,
    }
    colormaps = json.dumps(colormap_tables()).encode()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def get_info(request: Request) -> Response:
        return JSONResponse(info)

    async def get_colormaps(request: Request) -> Response:
        return Response(colormaps, media_type="application/json")

    async def get_files(request: Request) -> Response:
        if served is None:
            return JSONResponse({"files": [], "truncated": False})
        files, truncated = await run_in_threadpool(served.images)
        return JSONResponse({"files": files, "truncated": truncated})

    @_answers_errors
    async def upload(request: Request) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload_bytes + 64 * 1024:  # room for the form's parts
            raise TooLarge(_too_large(max_upload_bytes))
        limited = Request(request.scope, _limited(request.receive, max_upload_bytes))
        async with limited.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
            part = form.get("photo")
            if part is None or isinstance(part, str):
                raise ImageError("no photo in the upload (a form field named 'photo' holding a file)")
            data = await part.read()
            name = Path(part.filename or "upload").name
        if len(data) > max_upload_bytes:
            raise TooLarge(_too_large(max_upload_bytes))
        if not data:
            raise ImageError(f"{name}: the file is empty")
        image = await run_in_threadpool(decode_image, data, name)
        photo = await run_in_threadpool(
            viewer.add_photo, image, name, f"upload:{name}:{hashlib.sha256(data).hexdigest()}"
        )
        return JSONResponse(photo.describe())

    @_answers_errors
    async def open_file(request: Request) -> Response:
        if served is None:
            raise NotFound("the viewer serves no folder (start it as `mieruka serve FOLDER`): upload a photo")
        body = await _json_object(request, 64 * 1024)
        path = served.resolve(body.get("path"))
        stat = path.stat()
        image = await run_in_threadpool(load_image, path)
        name = PurePosixPath(body["path"]).as_posix()  # as the list shows it, links not followed
        key = f"file:{name}:{path}:{stat.st_mtime_ns}:{stat.st_size}"
        photo = await run_in_threadpool(viewer.add_photo, image, name, key)
        return JSONResponse(photo.describe())

    @_answers_errors
    async def photo_png(request: Request) -> Response:
        photo = viewer.photo(request.path_params["photo_id"])
        return Response(photo.png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @_answers_errors
    async def explain(request: Request) -> Response:
        body = await _json_object(request, 64 * 1024)
        methods = body.get("methods") or ["gradcam"]
        top_k = body.get("top_k", 1)
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise MierukaError("'methods' must be a list of method names")
        if not isinstance(top_k, int) or isinstance(top_k, bool):
            raise MierukaError(f"'top_k' must be a whole number, got {top_k!r}")
        for key in ("photo", "layer", "target"):
            if body.get(key) is not None and not isinstance(body[key], str | int):
                raise MierukaError(f"'{key}' must be text")
        result = await run_in_threadpool(
            viewer.explain,
            str(body.get("photo", "")),
            methods,
            body.get("layer") or None,
            None if body.get("target") is None else str(body["target"]),
            top_k,
        )
        return JSONResponse(result)

    async def font(request: Request) -> Response:
        served = {
            "latin.ttf": fonts.dejavu_sans(),
            "ja.ttf": fonts.japanese(),
            "zh.otf": fonts.chinese(),
            "ko.ttf": fonts.korean(),
        }
        path = served.get(request.path_params["name"])
        if path is None or not path.is_file():
            return JSONResponse({"error": "no such font"}, status_code=404)
        data = await run_in_threadpool(browser_font, path)
        kind = "font/otf" if path.suffix.lower() == ".otf" else "font/ttf"
        return Response(data, media_type=kind, headers={"Cache-Control": "max-age=86400"})

    hosts = ["*"] if host in ("0.0.0.0", "::", "") else sorted({host, *LOCAL_HOSTS, "[::1]"})
    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/info", get_info),
            Route("/api/colormaps", get_colormaps),
            Route("/api/files", get_files),
            Route("/api/upload", upload, methods=["POST"]),
            Route("/api/open", open_file, methods=["POST"]),
            Route("/api/photos/{photo_id:str}.png", photo_png),
            Route("/api/explain", explain, methods=["POST"]),
            Route("/fonts/{name:str}", font),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
    )


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening before the model loads, so a busy port is told at
    once and connections made as soon as the address is printed queue up; port 0 takes any free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port} ({error.strerror or error}): choose another --port or --host"
        ) from None
    sock.listen(2048)  # uvicorn's backlog: a browser opened on the printed address waits, never refused
    sock.set_inheritable(True)
    return sock


def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve `app` on the bound socket until interrupted (Ctrl+C)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


# ---- helpers -----------------------------------------------------------------------------------

STATUS = ((TooLarge, 413), (PhotoGone, 404), (NotFound, 404), (PathRefused, 403), (MierukaError, 400))


def _answers_errors(endpoint: Callable[[Request], Awaitable[Response]]):
    """Errors of the request as JSON with their message and a 4xx status; anything unexpected as a
    500 with one line, its traceback in the server's log only."""

    @functools.wraps(endpoint)
    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except MierukaError as error:
            status = next(code for kind, code in STATUS if isinstance(error, kind))
            return JSONResponse({"error": str(error)}, status_code=status)
        except HTTPException as error:  # Starlette's own: a malformed multipart body
            return JSONResponse(
                {"error": f"a malformed upload: {error.detail}"}, status_code=error.status_code
            )
        except ClientDisconnect:
            return Response(status_code=400)
        except ValueError as error:  # a library check on what the page sent
            return JSONResponse({"error": str(error)}, status_code=400)
        except Exception as error:
            LOG.exception("mieruka serve: %s %s failed", request.method, request.url.path)
            return JSONResponse(
                {"error": f"internal error: {type(error).__name__}: {error} (see the server's log)"},
                status_code=500,
            )

    return answer


def _limited(receive, limit: int):
    """`receive` that raises TooLarge as soon as the body read so far passes `limit` bytes (plus the
    multipart headers' room), before any more of it is taken in."""
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit + 64 * 1024:
                raise TooLarge(_too_large(limit))
        return message

    return counted


def _too_large(limit: int) -> str:
    return f"the photo is over the upload limit of {limit / 2**20:g} MB (--max-upload-mb); downscale it first"


async def _json_object(request: Request, limit: int) -> dict:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise MierukaError(f"the request is over {limit // 1024} KB")
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise MierukaError("the request is not valid JSON") from None
    if not isinstance(value, dict):
        raise MierukaError("expected a JSON object")
    return value

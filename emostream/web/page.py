"""The browser page's files, shipped in the package (``static/``) and served by the WebSocket server
on the same port: no CDN, no build step."""

from __future__ import annotations

import http
import re
from functools import lru_cache
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

CONTENT_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
                 "css": "text/css; charset=utf-8", "svg": "image/svg+xml", "png": "image/png",
                 "txt": "text/plain; charset=utf-8", "ico": "image/x-icon"}
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\.(html|js|css|svg|png|txt|ico)")
# the page talks only to the server it came from; the microphone needs no other source
POLICY = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
          "media-src 'self' blob:; style-src 'self'; script-src 'self'; worker-src 'self' blob:; "
          "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@lru_cache(maxsize=32)
def _read(name: str) -> bytes | None:
    file = resources.files("emostream.web") / "static" / name
    return file.read_bytes() if file.is_file() else None


def page_response(path: str) -> Response | None:
    """The file a GET of ``path`` asks for (``/`` is the page), or None when there is no such file."""
    name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/")
    if not _NAME.fullmatch(name):
        return None
    body = _read(name)
    if body is None:
        return None
    headers = Headers([("Content-Type", CONTENT_TYPES[name.rsplit(".", 1)[1]]), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                       ("Content-Security-Policy", POLICY), ("Referrer-Policy", "no-referrer")])
    return Response(http.HTTPStatus.OK.value, http.HTTPStatus.OK.phrase, headers, body)

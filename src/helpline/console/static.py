"""The console's own stylesheet, read once from the package."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.resources import files

from helpline.console.context import Console
from helpline.console.web import ConsoleRequest, Response

# Short enough that a new release's styles arrive within minutes.
_CACHE = "public, max-age=300"


async def stylesheet(
    console: Console, request: ConsoleRequest, params: Mapping[str, str]
) -> Response:
    return Response(
        200, _stylesheet(), content_type="text/css; charset=utf-8", cache_control=_CACHE
    )


@functools.cache
def _stylesheet() -> bytes:
    return files("helpline.console").joinpath("static/console.css").read_bytes()

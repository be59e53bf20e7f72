"""Rendering the console's HTML: one Jinja environment, autoescaping everything.

Every template extends ``base.html``, which shows the signed-in agent and the
sign-out form whenever the request has a session.
"""

from __future__ import annotations

import http
from collections.abc import Sequence
from typing import Any

import jinja2

from helpline.console.web import ConsoleRequest, PageError, Response
from helpline.domain.clock import iso_utc

_KIB = 1024


class Pages:
    """The templates under ``helpline/console/templates``."""

    def __init__(self) -> None:
        self._environment = jinja2.Environment(
            loader=jinja2.PackageLoader("helpline.console", "templates"),
            # Every value is escaped, whichever template or extension: ticket
            # text comes from integrators and requesters, not from us.
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._environment.filters["iso"] = iso_utc
        self._environment.filters["size"] = file_size

    def render(
        self,
        template: str,
        *,
        request: ConsoleRequest,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
        **context: Any,
    ) -> Response:
        session = request.session
        html = self._environment.get_template(template).render(
            agent=session.agent if session else None,
            csrf_token=session.csrf_token if session else "",
            **context,
        )
        return Response(status, html.encode(), headers=list(headers))

    def error(self, request: ConsoleRequest, problem: PageError) -> Response:
        """The error page for ``problem``, with its status and headers."""
        return self.render(
            "error.html",
            request=request,
            status=problem.status,
            headers=list(problem.headers.items()),
            title=http.HTTPStatus(problem.status).phrase,
            message=problem.message,
        )


def file_size(size_bytes: int) -> str:
    """``512 bytes``, ``3.4 KiB``, ``25.0 MiB``."""
    if size_bytes < _KIB:
        return f"{size_bytes} bytes"
    if size_bytes < _KIB * _KIB:
        return f"{size_bytes / _KIB:.1f} KiB"
    return f"{size_bytes / (_KIB * _KIB):.1f} MiB"

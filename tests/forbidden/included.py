"""``config.include("tests.forbidden.included")``: a forbidden view added imperatively."""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response


def app_forbidden(request: Request) -> Response:
    return Response("the app's own forbidden page (included)", status=403)


def includeme(config: Configurator) -> None:
    config.add_forbidden_view(app_forbidden)

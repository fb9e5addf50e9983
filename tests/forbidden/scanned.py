"""``config.scan("tests.forbidden.scanned")``: a forbidden view found by scan."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import forbidden_view_config


@forbidden_view_config()
def app_forbidden(request: Request) -> Response:
    return Response("the app's own forbidden page (scanned)", status=403)

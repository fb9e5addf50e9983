"""The forbidden view (send anonymous users to log in) and the store-outage view."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

from pyramid.httpexceptions import (
    HTTPForbidden,
    HTTPSeeOther,
    HTTPServiceUnavailable,
    HTTPUnauthorized,
)

from .errors import ReauthenticationRequired, StoreUnavailable
from .redirects import safe_return_path
from .request import REAUTHENTICATE, find_state

if TYPE_CHECKING:
    from pyramid.request import Request
    from pyramid.response import Response


RETRY_AFTER_SECONDS = 5
# The query parameter that tells the login page why it was sent there.
REASON_PARAMETER = "jeff_reason"
# What request.jeff_login_reason may be: a re-authentication (jeff_recent_login), or why
# this browser's session ended, as far as the store can tell.
LOGIN_REASONS = ("reauthenticate", "expired", "idle", "revoked", "evicted", "ended")


def wants_json(request: Request) -> bool:
    """XHR, or an ``Accept`` header that prefers JSON over HTML."""
    if request.headers.get("X-Requested-With") == "XMLHttpRequest":
        return True
    if "Accept" not in request.headers:
        return False
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"


class ForbiddenView:
    """Anonymous (or a login too old for ``jeff_recent_login``): redirect to the login
    page with ``next``; XHR/JSON and bearer clients: 401; else 403."""

    def __init__(self, login_url: str) -> None:
        self.login_url = login_url
        self.login_path = urlsplit(login_url).path or "/"

    def __call__(self, exc: HTTPForbidden, request: Request) -> Response:
        reauthenticate = isinstance(exc, ReauthenticationRequired)
        if request.is_authenticated and not reauthenticate:
            return exc
        state = find_state(request)
        if state is not None and state.bearer:
            # An API client (RFC 6750): its credential is missing, dead or ambiguous.
            return HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if wants_json(request):
            return HTTPUnauthorized()
        if request.path == self.login_path:
            return exc  # the login page itself is forbidden: a redirect would loop
        query: dict[str, str] = {}
        # No `next` for a POST-only URL (coming back with a GET would fail) nor for a path
        # a catch-all route met at //evil.com/x. The query is the login view's to check,
        # with safe_return_path, on the way back.
        if request.method in ("GET", "HEAD") and safe_return_path(request.path, ""):
            query["next"] = request.path_qs
        reason = "reauthenticate" if reauthenticate else login_reason(request)
        if reason is not None:
            query[REASON_PARAMETER] = reason
        if not query:
            return HTTPSeeOther(location=self.login_url)
        separator = "&" if "?" in self.login_url else "?"
        return HTTPSeeOther(location=f"{self.login_url}{separator}{urlencode(query)}")


def login_reason(request: Request) -> str | None:
    """Why this request is asked to log in (``request.jeff_login_reason``): one of
    :data:`LOGIN_REASONS`, or ``None`` (never logged in, or cannot tell).

    Known from this request's own cookie when it names a session that ended, else from
    the ``jeff_reason`` parameter the forbidden view adds to the login URL. The
    parameter comes from the browser: show a fixed message for it, never act on it.
    """
    if request.__dict__.get(REAUTHENTICATE):
        return "reauthenticate"
    request.jeff_session  # noqa: B018 -- verify the cookie (once) to learn its fate
    state = find_state(request)
    if state is not None and state.end_reason is not None:
        return state.end_reason
    try:
        given = request.GET.get(REASON_PARAMETER)
    except UnicodeDecodeError:  # a query string that is not UTF-8 tells nothing
        return None
    return given if given in LOGIN_REASONS else None


def store_unavailable_view(exc: StoreUnavailable, request: Request) -> Response:
    """The 503 page of a store outage (never a logout), with ``Retry-After``. An
    application replaces it with an exception view of its own for
    :class:`~pyramid_jeff.StoreUnavailable`; the tween logs the outage and keeps the
    response free of session cookies, whichever view answered."""
    response = HTTPServiceUnavailable(
        detail="The session store is unavailable; please try again shortly."
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response

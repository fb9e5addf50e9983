"""Error pages in the demo's own look, each with a way on.

pyramid_jeff's defaults stay where they matter: its forbidden view still sends anonymous
visitors to the login page (the two forbidden views here have predicates, so it is still
registered for every other request), and its 503 view still makes the response of a store
outage; the view here only gives that response a page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken
from pyramid.view import forbidden_view_config, notfound_view_config, view_config

from pyramid_jeff import StoreUnavailable, safe_return_path, store_unavailable_view
from pyramid_jeff_demo.notices import see_other

if TYPE_CHECKING:
    from pyramid.httpexceptions import HTTPForbidden, HTTPSeeOther
    from pyramid.request import Request

_TEMPLATES = "pyramid_jeff_demo:templates/"
_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def _sign_in_again(request: Request) -> HTTPSeeOther:
    """A form sent after its session ended (logged out in another tab, revoked, expired):
    nothing was done; the login page says so, and why the session ended if that is known."""
    reason = request.jeff_login_reason
    location = request.route_path("login", _query={"jeff_reason": reason} if reason else {})
    return see_other(request, location, notice="stale-form")


@forbidden_view_config(is_authenticated=False, request_method=_UNSAFE, accept="text/html")
def stale_form(exc: HTTPForbidden, request: Request) -> HTTPSeeOther:
    # pyramid_jeff's own view would send it to the login page too (without `next`, since
    # a GET cannot finish a POST), but without a word of why.
    return _sign_in_again(request)


@forbidden_view_config(is_authenticated=True, renderer=_TEMPLATES + "forbidden.jinja2")
def forbidden(exc: HTTPForbidden, request: Request) -> dict[str, Any]:
    # Signed in, without the permission: bob on the admin page.
    request.response.status_int = 403
    return {}


@notfound_view_config(renderer=_TEMPLATES + "notfound.jinja2")
def not_found(exc: Exception, request: Request) -> dict[str, Any]:
    request.response.status_int = 404
    return {}


# Pyramid's URLDecodeError (a path that is not UTF-8) is one too, as is a query string or
# form that WebOb cannot decode: a 400 that says so, not a 500.
@view_config(context=UnicodeDecodeError, renderer=_TEMPLATES + "unreadable.jinja2")
def unreadable(exc: UnicodeDecodeError, request: Request) -> dict[str, Any]:
    request.response.status_int = 400
    return {"unreadable": True}


@view_config(context=BadCSRFToken, renderer=_TEMPLATES + "csrf.jinja2")
@view_config(context=BadCSRFOrigin, renderer=_TEMPLATES + "csrf.jinja2")
def bad_csrf(exc: Exception, request: Request) -> Any:
    if not request.is_authenticated:
        # An anonymous page's token dies at every login and logout (in another tab, say).
        return _sign_in_again(request)
    # Still a 400, as Pyramid's default; a person just gets a page that says what to do.
    request.response.status_int = 400
    return {}


# The application's view for StoreUnavailable replaces pyramid_jeff's: a view registered by
# the including configuration wins over the same one from an included package.
@view_config(context=StoreUnavailable, renderer=_TEMPLATES + "unavailable.jinja2")
def store_unavailable(exc: StoreUnavailable, request: Request) -> dict[str, Any]:
    # pyramid_jeff's own view makes the response (503, Retry-After, Cache-Control:
    # no-store); only its body is replaced here.
    outage = store_unavailable_view(exc, request)
    response = request.response
    response.status = outage.status
    for name in ("Retry-After", "Cache-Control"):
        response.headers[name] = outage.headers[name]
    # The page must not read the session (the layout's "signed in as"): that would fail again.
    again = safe_return_path(request.path_qs, "") if request.method == "GET" else ""
    return {"outage": True, "retry_after": outage.headers["Retry-After"], "again": again}

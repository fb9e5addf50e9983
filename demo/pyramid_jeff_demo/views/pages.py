"""The public pages, one page for logged-in visitors, and the headers of every response."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.events import NewResponse, subscriber
from pyramid.view import view_config

from pyramid_jeff_demo.security import USERS

if TYPE_CHECKING:
    from pyramid.request import Request

_PRODUCTS = [
    ("Pineapple", "Sweet, spiky, and the mascot of jeff.", "2.50"),
    ("Session cookies", "HttpOnly, SameSite=Lax, baked fresh at every login.", "0.00"),
    ("Redis hash", "One per user, one field per device. Cluster-ready.", "7.00"),
    ("Revocation button", "Ends a session now, not when a token expires.", "1.00"),
]


# Pages that show session ids, addresses, user agents or the audit trail: kept out of
# every cache, the browser's own included (Back on a shared computer after logout).
PERSONAL_PAGES = frozenset({"sessions", "admin", "admin_everyone", "password"})


@subscriber(NewResponse)
def security_headers(event: NewResponse) -> None:
    """Headers any login page deserves; the demo has no inline script or style to allow."""
    headers = event.response.headers
    route = event.request.matched_route
    if route is not None and route.name in PERSONAL_PAGES:
        headers["Cache-Control"] = "no-store"
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")


@view_config(route_name="home", renderer="pyramid_jeff_demo:templates/home.jinja2")
def home(request: Request) -> dict[str, Any]:
    return {}


@view_config(route_name="products", renderer="pyramid_jeff_demo:templates/products.jinja2")
def products(request: Request) -> dict[str, Any]:
    # Public: anyone sees it; a logged-in visitor is greeted by name (request.identity).
    return {"products": _PRODUCTS}


@view_config(
    route_name="users", permission="view", renderer="pyramid_jeff_demo:templates/users.jinja2"
)
def users(request: Request) -> dict[str, Any]:
    return {"users": list(USERS.values())}

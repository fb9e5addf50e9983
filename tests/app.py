"""A small Pyramid app the functional tests drive: just enough views to exercise the policy."""

from __future__ import annotations

from typing import Any, ClassVar

from pyramid.authorization import Allow, Authenticated
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import view_config

from pyramid_jeff import safe_return_path
from pyramid_jeff.testing import jeff_policy

from .helpers import jeff_config


class Root:
    __acl__: ClassVar = [(Allow, Authenticated, "view"), (Allow, "role:admin", "admin")]

    def __init__(self, request: Request) -> None:
        self.request = request


def groupfinder(key: str, request: Request) -> list[str] | None:
    if key == "disabled@example.com":
        return None  # a disabled account: anonymous, whatever its sessions say
    return ["role:admin"] if key.startswith("admin") else []


@view_config(route_name="login", request_method="POST")
def login(request: Request) -> Response:
    key: Any = request.POST["key"]
    if request.POST.get("as_int"):
        key = int(key)
    meta = {"method": request.POST["method"]} if "method" in request.POST else None
    headers = remember(request, key, meta=meta)
    target = safe_return_path(request.POST.get("next") or request.GET.get("next"), "/public")
    return HTTPSeeOther(location=target, headers=headers)


@view_config(route_name="logout", request_method="POST")
def logout(request: Request) -> Response:
    return HTTPSeeOther(location="/public", headers=forget(request))


@view_config(route_name="public", renderer="string")
def public(request: Request) -> str:
    userid = request.authenticated_userid
    return "anonymous" if userid is None else f"hello {userid}"


@view_config(route_name="static", renderer="string")
def static(request: Request) -> str:
    return "no session needed here"


@view_config(route_name="protected", renderer="string", permission="view")
def protected(request: Request) -> str:
    return f"secret for {request.authenticated_userid}"


@view_config(route_name="admin", renderer="string", permission="admin")
def admin(request: Request) -> str:
    return "admin area"


@view_config(route_name="whoami", renderer="json")
def whoami(request: Request) -> dict[str, Any]:
    session = request.jeff_session
    return {
        "userid": request.authenticated_userid,
        "session_id": None if session is None else session.id,
        "principals": jeff_policy(request.registry).effective_principals(request),
        "meta": None if session is None else dict(session.meta),
    }


@view_config(route_name="sessions", renderer="json", permission="view")
def sessions(request: Request) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "ip": s.ip, "user_agent": s.user_agent}
        for s in request.jeff.sessions(request.authenticated_userid)
    ]


def make_wsgi_app(settings: dict[str, Any]) -> Any:
    config = jeff_config(settings, root_factory=Root)
    for name, path in [
        ("login", "/login"),
        ("logout", "/logout"),
        ("public", "/public"),
        ("static", "/static"),
        ("protected", "/protected"),
        ("admin", "/admin"),
        ("whoami", "/whoami"),
        ("sessions", "/sessions"),
    ]:
        config.add_route(name, path)
    config.scan("tests.app")
    return config.make_wsgi_app()

"""An identity loader and a groupfinder may use the request's security API, as apps do.

Moving an app's security code into ``jeff.identity_loader`` / ``jeff.groupfinder`` means
the loader looks up the user from ``request.authenticated_userid`` and the groupfinder
reads the role from ``request.identity``: both work, in any order of access, and the
store is read once.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import webtest
from pyramid.authorization import Allow, Authenticated, Everyone
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.security import remember

from pyramid_jeff.testing import jeff_policy

from .conftest import HTTPS
from .helpers import jeff_config, memory_only

USERS = {"1": {"name": "ann", "role": "editor"}, "2": {"name": "bob", "role": "viewer"}}


class Root:
    __acl__: ClassVar = [(Allow, "role:editor", "edit"), (Allow, Authenticated, "view")]

    def __init__(self, request: Request) -> None:
        pass


def principals(request: Request) -> list[str]:
    # request.effective_principals is the deprecated pre-2.0 API: ask the policy.
    return sorted(jeff_policy(request.registry).effective_principals(request))


def load_user(session: Any, request: Request) -> dict[str, Any] | None:
    # What the app's old policy did with the userid, and what the loader can see.
    seen = request.environ.setdefault("test.seen", {})
    seen["loader"] = {
        "authenticated_userid": request.authenticated_userid,
        "jeff_session_key": request.jeff_session.key,
        "identity": request.identity,
        "is_authenticated": request.is_authenticated,
        "principals": principals(request),
    }
    user = USERS.get(request.authenticated_userid or "")
    return None if user is None else {"id": session.key, **user}


def groups(key: str, request: Request) -> list[str] | None:
    seen = request.environ.setdefault("test.seen", {})
    seen["groupfinder"] = {
        "identity": request.identity,
        "is_authenticated": request.is_authenticated,
        "authenticated_userid": request.authenticated_userid,
    }
    user = request.identity
    return None if user is None else [f"role:{user['role']}"]


ACCESSORS = {
    "identity": lambda r: r.identity,
    "authenticated_userid": lambda r: r.authenticated_userid,
    "is_authenticated": lambda r: r.is_authenticated,
    "effective_principals": principals,
    "has_permission": lambda r: bool(r.has_permission("edit")),
    "jeff_session": lambda r: r.jeff_session,
}


def make_app(store_url: str) -> webtest.TestApp:
    config = jeff_config(
        store=store_url, identity_loader=load_user, groupfinder=groups, root_factory=Root
    )

    def login(request: Request) -> HTTPSeeOther:
        return HTTPSeeOther("/", headers=remember(request, request.params["id"]))

    def probe(request: Request) -> dict[str, Any]:
        first = request.params.get("first")
        if first:
            ACCESSORS[first](request)
        result = {
            "identity": request.identity,
            "userid": request.authenticated_userid,
            "is_authenticated": request.is_authenticated,
            "can_edit": bool(request.has_permission("edit")),
            "principals": principals(request),
        }
        result["seen"] = request.environ.get("test.seen", {})
        return result

    config.add_route("login", "/login")
    config.add_view(login, route_name="login")
    config.add_route("probe", "/probe")
    config.add_view(probe, route_name="probe", renderer="json")
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))


@pytest.mark.parametrize("first", ["", *ACCESSORS])
@memory_only
def test_loader_and_groupfinder_read_the_security_api_in_any_order(
    store_url: str, first: str
) -> None:
    app = make_app(store_url)
    app.get("/login", {"id": "1"}, status=303)
    body = app.get("/probe", {"first": first}).json
    assert body["identity"] == {"id": "1", "name": "ann", "role": "editor"}
    assert body["userid"] == "1"
    assert body["is_authenticated"] is True
    assert body["can_edit"] is True
    assert body["principals"] == sorted([Everyone, Authenticated, "1", "role:editor"])
    # While the loader runs: the verified key, its session, no identity yet.
    assert body["seen"]["loader"] == {
        "authenticated_userid": "1",
        "jeff_session_key": "1",
        "identity": None,
        "is_authenticated": True,
        "principals": sorted([Everyone, Authenticated, "1"]),
    }
    # While the groupfinder runs: what the loader returned.
    assert body["seen"]["groupfinder"] == {
        "identity": body["identity"],
        "is_authenticated": True,
        "authenticated_userid": "1",
    }


@memory_only
def test_a_user_the_loader_cannot_find_is_anonymous(store_url: str) -> None:
    app = make_app(store_url)
    app.get("/login", {"id": "3"}, status=303)  # no such user
    body = app.get("/probe").json
    assert body["identity"] is None
    assert body["userid"] is None
    assert body["is_authenticated"] is False
    assert body["principals"] == [Everyone]
    assert "groupfinder" not in body["seen"]


def make_counting_app(
    loader: Any, groupfinder: Any = None, permission: str | None = None
) -> webtest.TestApp:
    config = jeff_config(identity_loader=loader, groupfinder=groupfinder, root_factory=Root)

    def login(request: Request) -> HTTPSeeOther:
        return HTTPSeeOther("/", headers=remember(request, request.params["id"]))

    def page(request: Request) -> dict[str, Any]:
        if request.params.get("expect_error"):
            with pytest.raises(RuntimeError):
                request.identity  # noqa: B018
        for accessor in list(ACCESSORS.values()) * 3:
            accessor(request)
        return {"identity": request.identity, "userid": request.authenticated_userid}

    config.add_route("login", "/login")
    config.add_view(login, route_name="login")
    config.add_route("page", "/page")
    config.add_view(page, route_name="page", renderer="json", permission=permission)
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))


def test_identity_is_resolved_once_per_request() -> None:
    calls: list[str] = []

    def counting_loader(session: Any, request: Request) -> Any:
        calls.append("loader")
        return load_user(session, request)

    def counting_groups(key: str, request: Request) -> Any:
        calls.append("groups")
        return groups(key, request)

    app = make_counting_app(counting_loader, counting_groups, permission="view")
    app.get("/login", {"id": "2"}, status=303)
    assert calls == []  # remember() resolves nothing
    assert app.get("/page").json["userid"] == "2"
    assert calls == ["loader", "groups"]


def test_a_failing_loader_is_not_cached_as_anonymous() -> None:
    calls: list[str] = []

    def flaky_loader(session: Any, request: Request) -> Any:
        calls.append(session.key)
        if len(calls) == 1:
            raise RuntimeError("database hiccup")
        return {"id": session.key}

    app = make_counting_app(flaky_loader)
    app.get("/login", {"id": "7"}, status=303)
    body = app.get("/page", {"expect_error": "1"}).json
    assert body == {"identity": {"id": "7"}, "userid": "7"}
    assert calls == ["7", "7"]  # tried again after the error, then kept

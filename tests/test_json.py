"""Sessions and their meta render as JSON the ways Pyramid apps render things."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
import webtest
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember

from pyramid_jeff import Session
from pyramid_jeff.session import pack_meta
from pyramid_jeff.testing import jeff_policy

from .conftest import HTTPS
from .helpers import jeff_config, memory_only

PUBLIC_FIELDS = {"key", "id", "created_at", "last_seen", "expires_at", "ip", "user_agent", "meta"}


def make_app(store_url: str) -> webtest.TestApp:
    config = jeff_config(store=store_url)

    def login(request: Request) -> HTTPSeeOther:
        meta = {"method": "password", "device": {"name": "phone", "trusted": True}}
        return HTTPSeeOther("/", headers=remember(request, "ann@example.com", meta=meta))

    def current(request: Request) -> Session | None:
        return request.jeff_session

    def listing(request: Request) -> list[Session]:
        return request.jeff.sessions(request.authenticated_userid)

    def meta(request: Request) -> Response:
        return Response(json=request.jeff_session.meta)

    for name, view, renderer in [
        ("login", login, None),
        ("current", current, "json"),
        ("listing", listing, "json"),
        ("meta", meta, None),
    ]:
        config.add_route(name, f"/{name}")
        config.add_view(view, route_name=name, renderer=renderer)
    return webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(HTTPS))


@memory_only
def test_a_session_its_list_and_its_meta_render_as_json(store_url: str) -> None:
    app = make_app(store_url)
    app.get("/login", status=303, headers={"User-Agent": "Phone/1.0"})
    app.get("/login", status=303, headers={"User-Agent": "Laptop/2.0"})
    current = app.get("/current").json
    assert set(current) == PUBLIC_FIELDS
    assert current["key"] == "ann@example.com"
    assert current["ip"] == "192.0.2.1"
    assert current["user_agent"] == "Laptop/2.0"
    assert current["meta"] == {"method": "password", "device": {"name": "phone", "trusted": True}}
    for field in ("created_at", "last_seen", "expires_at"):
        assert datetime.fromisoformat(current[field]).utcoffset() is not None  # aware, UTC
    listing = app.get("/listing").json
    assert len(listing) == 1  # the second login replaced the first in this browser
    assert listing[0] == current
    assert app.get("/meta").json == current["meta"]


@memory_only
def test_json_never_carries_the_token_or_its_digest(store_url: str) -> None:
    app = make_app(store_url)
    login = app.get("/login", status=303)
    cookie_value = login.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    policy = jeff_policy(app.app.registry)  # type: ignore[attr-defined]
    session = policy.manager.sessions("ann@example.com")[0]
    body = app.get("/current").text
    assert session.token_digest and session.token_digest.hex() not in body
    assert cookie_value not in body
    assert "digest" not in body


def test_meta_is_a_plain_dict_copy() -> None:
    session = Session(
        key="k", id="i", created_ms=0, last_seen_ms=0, expires_ms=1000, ip=None, user_agent=None
    )
    assert session.meta == {} and type(session.meta) is dict
    first: Any = session.meta
    first["changed"] = True
    assert session.meta == {}  # a copy: changing it changes nothing kept
    assert json.loads(json.dumps(session.__json__(None)))["expires_at"] == (
        "1970-01-01T00:00:01+00:00"
    )


def test_meta_that_would_not_read_back_is_refused() -> None:
    # Tuple keys pack, but msgpack cannot turn them back into a dict.
    with pytest.raises(TypeError, match="msgpack"):
        pack_meta({(1, 2): "x"})

"""The demo application as development.ini builds it, on each store, and browsers on it."""

from __future__ import annotations

import pytest
from pyramid.router import Router

import pyramid_jeff_demo
import pyramid_jeff_demo.security
from pyramid_jeff_demo.security import USERS

from ..conftest import clean_store_url
from .pages import Browser, DemoFactory, browsers

# development.ini keeps sessions in SQLite, redis.ini in Redis. PostgreSQL and MariaDB (a new
# database per test) would add a minute and behave here as SQLite does: the store contract
# tests cover them.
DEMO_STORES = ("memory", "redis", "memcached", "sqlite")


@pytest.fixture(params=DEMO_STORES)
def demo_store_url(request: pytest.FixtureRequest) -> str:
    return clean_store_url(request, request.param)


@pytest.fixture
def make_demo(demo_store_url: str) -> DemoFactory:
    """``make_demo(**settings)``: the demo as development.ini builds it, on each store, with
    these ``jeff.*`` settings besides.

    ``jeff.cookie_secure = false``: WebTest speaks plain http, like the development server.
    """

    def make(**settings: str) -> Router:
        return pyramid_jeff_demo.main(
            {}, **{"jeff.store": demo_store_url, "jeff.cookie_secure": "false", **settings}
        )

    return make


@pytest.fixture
def demo_app(make_demo: DemoFactory) -> Router:
    return make_demo()


@pytest.fixture
def browser(demo_app: Router) -> Browser:
    return browsers(demo_app)


@pytest.fixture
def restore_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that changes a password gives the demo users theirs back afterwards."""
    for email, user in list(USERS.items()):
        monkeypatch.setitem(USERS, email, user)

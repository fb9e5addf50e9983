"""Every feature on every store: ``make_app(**jeff)`` builds tests/account_app.py on the
current one."""

from __future__ import annotations

import pytest

from ..account_app import EVENTS
from ..conftest import ALL_STORES, clean_store_url
from .client import Factory, build_app


@pytest.fixture(params=ALL_STORES)
def store_url(request: pytest.FixtureRequest) -> str:
    """Every feature on every store."""
    return clean_store_url(request, request.param)


@pytest.fixture
def make_app(store_url: str) -> Factory:
    EVENTS.clear()
    return lambda **kw: build_app(store_url, **kw)

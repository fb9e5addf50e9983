"""The SQL store's fixtures: each test on SQLite, PostgreSQL and MariaDB (``sql_kind``), a
database of its own, the store on it and an engine of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest
import sqlalchemy as sa

from pyramid_jeff.stores.sql import SQLStore

from ...conftest import clean_store_url

SQL_STORES = ("sqlite", "postgresql", "mariadb")


@pytest.fixture(params=SQL_STORES)
def sql_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sql_url(request: pytest.FixtureRequest, sql_kind: str) -> str:
    """A database of this test's own (conftest's ``sqlite_url``, ``postgresql_url``...)."""
    return clean_store_url(request, sql_kind)


@pytest.fixture
def store(sql_url: str) -> Iterator[SQLStore]:
    with closing(SQLStore.from_url(sql_url)) as made:
        yield made


@pytest.fixture
def raw(sql_url: str) -> Iterator[sa.Engine]:
    """An engine of the test's own on the same database (what an application has)."""
    engine = sa.create_engine(sql_url)
    yield engine
    engine.dispose()


@pytest.fixture
def network_url(sql_url: str) -> str:
    """A database behind a network (SQLite's lock is tested on its own)."""
    return sql_url

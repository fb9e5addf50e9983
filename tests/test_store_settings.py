"""The store settings: the URL chooses the store, factories by dotted name, each store's own
settings coerced and bounded."""

from __future__ import annotations

from typing import Any

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_jeff import MemoryStore, RedisStore
from pyramid_jeff.settings import parse_settings
from pyramid_jeff.testing import jeff_policy

from .helpers import jeff_app


def test_store_urls_choose_the_store(redis_url: str) -> None:
    assert isinstance(jeff_policy(jeff_app().registry).manager.store, MemoryStore)
    app = jeff_app({"jeff.store": redis_url, "jeff.redis.socket_timeout": "0.5"})
    store = jeff_policy(app.registry).manager.store
    assert isinstance(store, RedisStore)
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.5
    assert kwargs["socket_connect_timeout"] == 1.0
    assert kwargs["retry"].get_retries() == 0
    assert store.client.connection_pool.timeout == 0.5  # bounded wait for a connection
    assert store.client.connection_pool.max_connections == 50


def make_custom_store(settings: dict[str, Any]) -> MemoryStore:
    store = MemoryStore()
    store.made_from = settings  # type: ignore[attr-defined]
    return store


def not_a_store(settings: dict[str, Any]) -> object:
    return object()


def test_store_factory_by_dotted_name() -> None:
    app = jeff_app({"jeff.store": "tests.test_store_settings.make_custom_store"})
    store = jeff_policy(app.registry).manager.store
    assert store.made_from["jeff.store"] == "tests.test_store_settings.make_custom_store"
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        jeff_app({"jeff.store": "tests.test_store_settings.not_a_store"})


class OldStore(MemoryStore):
    """A store written for the protocol before revoke_everyone."""

    revoke_everyone = None  # type: ignore[assignment]


def make_old_store(settings: dict[str, Any]) -> OldStore:
    return OldStore()


def test_a_store_missing_a_method_is_named_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.store: .*without revoke_everyone"):
        jeff_app({"jeff.store": "tests.test_store_settings.make_old_store"})


def test_malformed_redis_url_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        jeff_app({"jeff.store": "redis://localhost:notaport/0"})


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0?socket_timeout=100000",
        "redis://localhost:6379/0?timeout=99",
        "redis://localhost:6379/0?max_connections=100000",
        "redis://localhost:6379/abc",
        "unix:///run/redis.sock?db=x",
    ],
)
def test_redis_urls_cannot_override_the_bounded_settings(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        jeff_app({"jeff.store": url})


def test_cluster_needs_a_redis_url() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.redis\.cluster"):
        jeff_app({"jeff.store": "unix:///run/redis.sock", "jeff.redis.cluster": "true"})
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        # Nothing listens there: a cluster client cannot map its slots.
        jeff_app(
            {
                "jeff.store": "redis://127.0.0.1:1/0",
                "jeff.redis.cluster": "true",
                "jeff.redis.socket_connect_timeout": "0.2",
            }
        )


def test_store_settings_of_memcached_and_sql_are_coerced() -> None:
    parsed = parse_settings(
        {
            "jeff.store": "memcached://127.0.0.1:11211,[::1]:11212",
            "jeff.memcached.socket_timeout": "0.5",
            "jeff.memcached.socket_connect_timeout": "0.25",
            "jeff.memcached.max_connections": "8",
            "jeff.memcached.key_prefix": "app:",
            "jeff.sql.table": "login_sessions",
            "jeff.sql.timeout": "2",
            "jeff.sql.pool_size": "3",
        }
    )
    assert parsed.store_kind == "memcached"
    assert (parsed.memcached_socket_timeout, parsed.memcached_socket_connect_timeout) == (
        0.5,
        0.25,
    )
    assert (parsed.memcached_max_connections, parsed.memcached_key_prefix) == (8, "app:")
    assert (parsed.sql_table, parsed.sql_timeout, parsed.sql_pool_size) == (
        "login_sessions",
        2.0,
        3,
    )
    for url in (
        "sqlite:///sessions.db",
        "postgresql+psycopg://app@db.internal/app",
        "mysql+pymysql://root@127.0.0.1/app",
        "mariadb+pymysql://root@127.0.0.1/app",
    ):
        assert parse_settings({"jeff.store": url}).store_kind == "sql"


def test_a_store_whose_extra_is_missing_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyramid_jeff.stores.memcached", None)
    with pytest.raises(ConfigurationError, match=r"jeff\.store: .*pyramid_jeff\[memcached\]"):
        jeff_app({"jeff.store": "memcached://127.0.0.1:11211"})
    monkeypatch.setitem(sys.modules, "pyramid_jeff.stores.sql", None)
    with pytest.raises(ConfigurationError, match=r"jeff\.store: .*pyramid_jeff\[sql\]"):
        jeff_app({"jeff.store": "sqlite://"})

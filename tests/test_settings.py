"""Settings: coerced, documented defaults, and a ConfigurationError naming the key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISecurityPolicy

import pyramid_jeff
from pyramid_jeff import MemoryStore, RedisStore
from pyramid_jeff.settings import KNOWN, SETTINGS, JeffSettings, markdown_table, parse_settings


def configure(**settings: Any) -> Any:
    config = Configurator(settings=settings)
    config.include("pyramid_jeff")
    return config.make_wsgi_app()


def policy_of(app: Any) -> Any:
    return app.registry.getUtility(ISecurityPolicy)


def test_defaults_match_the_contract() -> None:
    parsed = parse_settings({})
    assert parsed == JeffSettings(**{s.field: s.default for s in SETTINGS})
    assert parsed.store == "memory://"
    assert parsed.cookie_name == "jeff"
    assert parsed.cookie_secure is True
    assert parsed.cookie_samesite == "Lax"
    assert parsed.cookie_domain is None
    assert parsed.cookie_path == "/"
    assert parsed.max_age == 2592000
    assert parsed.idle_timeout == 0
    assert parsed.max_sessions == 32
    assert parsed.login_url == "/"
    assert parsed.redis_socket_timeout == 1.0
    assert parsed.redis_socket_connect_timeout == 1.0


def test_strings_from_an_ini_file_are_coerced() -> None:
    parsed = parse_settings(
        {
            "jeff.cookie_secure": "false",
            "jeff.cookie_samesite": "strict",
            "jeff.max_age": " 3600 ",
            "jeff.idle_timeout": "600",
            "jeff.max_sessions": "5",
            "jeff.csrf": "yes",
            "jeff.redis.socket_timeout": "0.25",
            "jeff.redis.max_connections": "7",
            "jeff.redis.key_prefix": "app:",
            "jeff.cookie_domain": "",
        }
    )
    assert parsed.cookie_secure is False
    assert parsed.cookie_samesite == "Strict"
    assert (parsed.max_age, parsed.idle_timeout, parsed.max_sessions) == (3600, 600, 5)
    assert parsed.csrf is True
    assert parsed.redis_socket_timeout == 0.25
    assert parsed.redis_max_connections == 7
    assert parsed.redis_key_prefix == "app:"
    assert parsed.cookie_domain is None


def test_dotted_names_are_resolved_with_maybe_dotted() -> None:
    app = configure(**{"jeff.groupfinder": "tests.app.groupfinder"})
    from tests.app import groupfinder

    assert policy_of(app).groupfinder is groupfinder


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("jeff.cookie_secure", "maybe"),
        ("jeff.cookie_samesite", "sometimes"),
        ("jeff.cookie_name", "__Host-jeff"),
        ("jeff.cookie_name", "has space"),
        ("jeff.cookie_domain", "bad domain;"),
        ("jeff.cookie_path", "no-slash"),
        ("jeff.max_age", "soon"),
        ("jeff.max_age", "0"),
        ("jeff.max_age", str(401 * 24 * 3600)),
        ("jeff.idle_timeout", "-1"),
        ("jeff.max_sessions", "0"),
        ("jeff.max_sessions", "1.5"),
        ("jeff.login_url", "//evil.example/login"),
        ("jeff.login_url", "javascript:alert(1)"),
        ("jeff.redirect", "tests.app.no_such_view"),
        ("jeff.groupfinder", "no_such_module.finder"),
        ("jeff.identity_loader", "tests.app.Root.__acl__"),
        ("jeff.csrf", "perhaps"),
        ("jeff.redis.socket_timeout", "0"),
        ("jeff.redis.socket_timeout", "inf"),
        ("jeff.redis.socket_connect_timeout", "120"),
        ("jeff.redis.max_connections", "none"),
        ("jeff.redis.key_prefix", "a{b}"),
        ("jeff.redis.cluster", "often"),
        ("jeff.store", "postgres://localhost/db"),  # SQLAlchemy's name is postgresql
        ("jeff.store", "oracle://scott@localhost/db"),  # not a dialect tested here
        ("jeff.store", "postgresql://localhost:notaport/db"),
        ("jeff.store", "memcached://"),
        ("jeff.store", "memcached://localhost"),
        ("jeff.store", "memcached://a:11211,b:port"),
        ("jeff.store", "memcached://localhost:11211/0"),
        ("jeff.store", "memcached://localhost:11211?timeout=9"),
        ("jeff.store", "memory://somewhere"),
        ("jeff.memcached.socket_timeout", "0"),
        ("jeff.memcached.socket_connect_timeout", "61"),
        ("jeff.memcached.max_connections", "0"),
        ("jeff.memcached.key_prefix", "has space"),
        ("jeff.memcached.key_prefix", "x" * 33),
        ("jeff.sql.table", "drop table;"),
        ("jeff.sql.table", "1st"),
        ("jeff.sql.timeout", "-1"),
        ("jeff.sql.pool_size", "lots"),
        ("jeff.store", "tests.app.no_such_factory"),
    ],
)
def test_a_bad_value_fails_at_startup_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        configure(**{key: value})


def test_an_unknown_key_fails_at_startup_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.max_age_days: unknown"):
        configure(**{"jeff.max_age_days": "3"})


def test_samesite_none_requires_secure() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.cookie_samesite"):
        configure(**{"jeff.cookie_samesite": "None", "jeff.cookie_secure": "false"})
    policy = policy_of(configure(**{"jeff.cookie_samesite": "none"}))
    assert policy.cookie.samesite == "None"


def test_other_settings_are_left_alone() -> None:
    others = {"jeffrey.anything": "x", "jeff": "y", "pyramid.reload_templates": "true"}
    # Not taken for ours (a "jeff" prefix without the dot would refuse them as unknown)...
    expected = dataclasses.replace(parse_settings({}), max_age=60)
    assert parse_settings({**others, "jeff.max_age": "60"}) == expected
    app = configure(**others)
    # ...and passed through untouched (Pyramid itself coerces its own reload_templates).
    assert app.registry.settings["jeffrey.anything"] == "x"
    assert app.registry.settings["jeff"] == "y"
    assert isinstance(policy_of(app).manager.store, MemoryStore)


def test_every_known_setting_is_documented_in_includeme() -> None:
    doc = pyramid_jeff.includeme.__doc__ or ""
    assert len(KNOWN) > 10  # the loop below checks something
    for key in KNOWN:
        assert f"``{key}``" in doc, key


def test_the_settings_table_gives_every_field() -> None:
    assert [f.name for f in dataclasses.fields(JeffSettings)] == [s.field for s in SETTINGS]
    assert len(KNOWN) == len(SETTINGS) > 10


def test_the_readme_table_is_the_settings_table() -> None:
    """The README's table of settings is pyramid_jeff.settings.markdown_table(), to the
    letter: change a setting's meaning in SETTINGS, then paste that table."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = markdown_table()
    assert table in readme, table


def test_store_urls_choose_the_store(redis_url: str) -> None:
    assert isinstance(policy_of(configure()).manager.store, MemoryStore)
    store = policy_of(
        configure(**{"jeff.store": redis_url, "jeff.redis.socket_timeout": "0.5"})
    ).manager.store
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
    app = configure(**{"jeff.store": "tests.test_settings.make_custom_store"})
    store = policy_of(app).manager.store
    assert store.made_from["jeff.store"] == "tests.test_settings.make_custom_store"
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        configure(**{"jeff.store": "tests.test_settings.not_a_store"})


class OldStore(MemoryStore):
    """A store written for the protocol before revoke_everyone."""

    revoke_everyone = None  # type: ignore[assignment]


def make_old_store(settings: dict[str, Any]) -> OldStore:
    return OldStore()


def test_a_store_missing_a_method_is_named_at_start_up() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.store: .*without revoke_everyone"):
        configure(**{"jeff.store": "tests.test_settings.make_old_store"})


def test_malformed_redis_url_names_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        configure(**{"jeff.store": "redis://localhost:notaport/0"})


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
        configure(**{"jeff.store": url})


def test_cluster_needs_a_redis_url() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.redis\.cluster"):
        configure(**{"jeff.store": "unix:///run/redis.sock", "jeff.redis.cluster": "true"})
    with pytest.raises(ConfigurationError, match=r"jeff\.store"):
        # Nothing listens there: a cluster client cannot map its slots.
        configure(
            **{
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
        configure(**{"jeff.store": "memcached://127.0.0.1:11211"})
    monkeypatch.setitem(sys.modules, "pyramid_jeff.stores.sql", None)
    with pytest.raises(ConfigurationError, match=r"jeff\.store: .*pyramid_jeff\[sql\]"):
        configure(**{"jeff.store": "sqlite://"})


def test_settings_added_after_the_include_count() -> None:
    """Read when the configuration commits, as pyramid_tm reads its own."""
    config = Configurator(settings={"jeff.max_age": "60"})
    config.include("pyramid_jeff")
    config.add_settings({"jeff.max_age": "120", "jeff.cookie_name": "later"})
    policy = policy_of(config.make_wsgi_app())
    assert policy.manager.max_age == 120
    assert policy.cookie.name == "__Host-later"


def test_a_bad_setting_fails_when_the_configuration_commits() -> None:
    config = Configurator(settings={"jeff.max_age": "0"})
    config.include("pyramid_jeff")  # nothing read yet
    with pytest.raises(ConfigurationError, match=r"jeff\.max_age: expected a whole number"):
        config.make_wsgi_app()


def test_an_application_policy_set_in_main_overrides_ours() -> None:
    from pyramid.authorization import ACLHelper

    class Mine:
        def identity(self, request: Any) -> None:
            return None

        def authenticated_userid(self, request: Any) -> None:
            return None

        def permits(self, request: Any, context: Any, permission: str) -> Any:
            return ACLHelper().permits(context, [], permission)

    config = Configurator()
    config.include("pyramid_jeff")
    mine = Mine()
    config.set_security_policy(mine)
    assert policy_of(config.make_wsgi_app()) is mine


def test_the_ini_form_pyramid_includes() -> None:
    """``pyramid.includes = pyramid_jeff`` in the ini file, as the README shows."""
    config = Configurator(
        settings={"pyramid.includes": "pyramid_tm\npyramid_jeff", "jeff.max_age": "60"}
    )
    policy = policy_of(config.make_wsgi_app())
    assert policy.manager.max_age == 60

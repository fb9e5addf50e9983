"""Settings: coerced, documented defaults, and a ConfigurationError naming the key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISecurityPolicy

import pyramid_jeff
from pyramid_jeff import MemoryStore
from pyramid_jeff.settings import KNOWN, SETTINGS, JeffSettings, markdown_table, parse_settings
from pyramid_jeff.testing import jeff_policy

from .helpers import jeff_app


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
    app = jeff_app({"jeff.groupfinder": "tests.app.groupfinder"})
    from tests.app import groupfinder

    assert jeff_policy(app.registry).groupfinder is groupfinder


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
        jeff_app({key: value})


def test_an_unknown_key_fails_at_startup_naming_it() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.max_age_days: unknown"):
        jeff_app({"jeff.max_age_days": "3"})


def test_samesite_none_requires_secure() -> None:
    with pytest.raises(ConfigurationError, match=r"jeff\.cookie_samesite"):
        jeff_app({"jeff.cookie_samesite": "None", "jeff.cookie_secure": "false"})
    policy = jeff_policy(jeff_app({"jeff.cookie_samesite": "none"}).registry)
    assert policy.cookie.samesite == "None"


def test_other_settings_are_left_alone() -> None:
    others = {"jeffrey.anything": "x", "jeff": "y", "pyramid.reload_templates": "true"}
    # Not taken for ours (a "jeff" prefix without the dot would refuse them as unknown)...
    expected = dataclasses.replace(parse_settings({}), max_age=60)
    assert parse_settings({**others, "jeff.max_age": "60"}) == expected
    app = jeff_app(others)
    # ...and passed through untouched (Pyramid itself coerces its own reload_templates).
    assert app.registry.settings["jeffrey.anything"] == "x"
    assert app.registry.settings["jeff"] == "y"
    assert isinstance(jeff_policy(app.registry).manager.store, MemoryStore)


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


def test_settings_added_after_the_include_count() -> None:
    """Read when the configuration commits, as pyramid_tm reads its own."""
    config = Configurator(settings={"jeff.max_age": "60"})
    config.include("pyramid_jeff")
    config.add_settings({"jeff.max_age": "120", "jeff.cookie_name": "later"})
    policy = jeff_policy(config.make_wsgi_app().registry)
    assert policy.manager.max_age == 120
    assert policy.cookie.name == "__Host-later"


def test_a_bad_setting_fails_when_the_configuration_commits() -> None:
    config = Configurator(settings={"jeff.max_age": "0"})
    config.include("pyramid_jeff")  # nothing read yet
    with pytest.raises(ConfigurationError, match=r"jeff\.max_age: expected a whole number"):
        config.make_wsgi_app()


def test_an_application_policy_set_in_main_overrides_ours() -> None:
    """A policy of the application's own (here one that delegates to ours) is the
    registered one; request.jeff, the tween and pjeff still find ours."""
    from pyramid.security import remember
    from webtest import TestApp

    from pyramid_jeff import JeffSecurityPolicy
    from pyramid_jeff.testing import jeff_policy

    class Delegating:
        def __init__(self, registry: Any) -> None:
            self.registry = registry

        def __getattr__(self, name: str) -> Any:
            return getattr(jeff_policy(self.registry), name)

    config = Configurator(settings={"jeff.cookie_secure": "false"})
    config.include("pyramid_jeff")
    mine = Delegating(config.registry)
    config.set_security_policy(mine)

    def login(request: Any) -> Any:
        request.response.headers.extend(remember(request, "ann"))
        return request.response

    def devices(request: Any) -> Any:
        request.response.text = f"{request.jeff_session.key}: {len(request.jeff.sessions('ann'))}"
        return request.response

    config.add_route("login", "/login")
    config.add_view(login, route_name="login")
    config.add_route("devices", "/devices")
    config.add_view(devices, route_name="devices")
    app = config.make_wsgi_app()
    assert app.registry.getUtility(ISecurityPolicy) is mine
    assert isinstance(jeff_policy(app.registry), JeffSecurityPolicy)
    browser = TestApp(app)
    browser.get("/login")
    assert browser.get("/devices").text == "ann: 1"


def test_the_ini_form_pyramid_includes() -> None:
    """``pyramid.includes = pyramid_jeff`` in the ini file, as the README shows."""
    config = Configurator(
        settings={"pyramid.includes": "pyramid_tm\npyramid_jeff", "jeff.max_age": "60"}
    )
    policy = jeff_policy(config.make_wsgi_app().registry)
    assert policy.manager.max_age == 60

"""The whole contract through WebTest, on every store."""

from __future__ import annotations

import pytest
import webtest

from pyramid_jeff import Session

from .conftest import ALL_STORES, AppFactory, ConfigFactory, JeffTestApp, clean_store_url
from .helpers import Clock, cookie_attributes, fresh_client, memory_only, set_cookies

COOKIE = "__Host-jeff"


@pytest.fixture(params=ALL_STORES)
def store_url(request: pytest.FixtureRequest) -> str:
    """The jeff scenario and its friends on memory, Redis, memcached and SQL."""
    return clean_store_url(request, request.param)


def test_jeff_scenario(app: JeffTestApp) -> None:
    """The Go jeff test, ported: three clients, list, revoke one, revoke all, logout."""
    key = "user::a@example.com"
    first = app
    first.get("/protected", status=303)

    response = first.login(key)
    (header,) = set_cookies(response)
    attributes = cookie_attributes(header)
    assert attributes["="].startswith(f"{COOKIE}=")
    assert {"httponly", "secure"} <= attributes.keys()
    assert attributes["samesite"] == "Lax"
    assert attributes["path"] == "/"
    assert "domain" not in attributes
    assert attributes["max-age"] == "2592000"
    assert first.get("/protected").text == f"secret for {key}"

    second, third = fresh_client(app), fresh_client(app)
    second.login(key)
    third.login(key)
    for client in (first, second, third):
        client.get("/protected", status=200)
    assert len(app.manager.sessions(key)) == 3

    third_id = third.get("/whoami").json["session_id"]
    assert app.manager.revoke(key, third_id) is True
    third.get("/protected", status=303)
    assert len(app.manager.sessions(key)) == 2
    first.get("/protected", status=200)

    assert app.manager.revoke_all(key) == 2
    first.get("/protected", status=303)
    second.get("/protected", status=303)
    assert app.manager.sessions(key) == []

    anonymous = fresh_client(app)
    assert anonymous.get("/public").text == "anonymous"
    fourth = fresh_client(app)
    fourth.login(key)
    assert fourth.get("/public").text == f"hello {key}"

    response = fourth.post("/logout", status=303)
    (expired,) = set_cookies(response)
    assert cookie_attributes(expired)["max-age"] == "0"
    assert app.manager.sessions(key) == []
    fourth.get("/protected", status=303)


def test_sessions_are_listed_newest_first_with_their_details(make_app: AppFactory) -> None:
    app = make_app()
    clock = Clock()
    app.manager.clock = clock
    for agent in ("phone", "laptop", "tablet"):
        client = fresh_client(app)
        client.extra_environ["HTTP_USER_AGENT"] = agent
        client.login("bob@example.com", method="password")
        clock.advance(1)
    sessions = app.manager.sessions("bob@example.com")
    assert [s.user_agent for s in sessions] == ["tablet", "laptop", "phone"]
    newest = sessions[0]
    assert isinstance(newest, Session)
    assert newest.key == "bob@example.com"
    assert newest.ip == "192.0.2.1"
    assert newest.meta == {"method": "password"}
    assert newest.created_at.tzinfo is not None
    assert newest.created_at == newest.last_seen
    assert (newest.expires_at - newest.created_at).total_seconds() == 2592000
    assert newest.created_ms == clock.now - 1000


def test_int_keys_are_kept_as_decimal_strings(app: JeffTestApp) -> None:
    app.login("42", as_int="1")
    assert app.get("/whoami").json["userid"] == "42"
    assert len(app.manager.sessions(42)) == 1
    assert app.manager.revoke_all(42) == 1


@memory_only
def test_responses_that_read_the_session_are_private(app: JeffTestApp) -> None:
    response = app.get("/public")
    assert response.headers["Vary"] == "Cookie"
    assert response.headers["Cache-Control"] == "private"
    untouched = app.get("/static")
    assert "Vary" not in untouched.headers
    assert "Cache-Control" not in untouched.headers


def test_a_dead_cookie_is_expired(app: JeffTestApp) -> None:
    app.login("bob@example.com")
    app.manager.revoke_all("bob@example.com")
    response = app.get("/public")
    assert response.text == "anonymous"
    (header,) = set_cookies(response)
    assert cookie_attributes(header)["max-age"] == "0"
    # The browser dropped it: nothing more to expire.
    assert set_cookies(app.get("/public")) == []


def test_absolute_lifetime(make_app: AppFactory) -> None:
    app = make_app(max_age=3600)
    clock = Clock()
    app.manager.clock = clock
    app.login("bob@example.com")
    clock.advance(3599)
    app.get("/protected", status=200)
    clock.advance(1)
    app.get("/protected", status=303)
    assert app.manager.sessions("bob@example.com") == []


def test_idle_timeout_and_last_seen_refresh(make_app: AppFactory) -> None:
    app = make_app(idle_timeout=600)
    assert app.manager.touch_interval_ms == 60_000  # min(1 minute, idle / 4)
    clock = Clock()
    app.manager.clock = clock
    app.login("bob@example.com")
    (session,) = app.manager.sessions("bob@example.com")
    # An active user never times out: a request every 9 minutes keeps it alive.
    for _ in range(5):
        clock.advance(540)
        app.get("/protected", status=200)
    (refreshed,) = app.manager.sessions("bob@example.com")
    assert refreshed.last_seen_ms == clock.now
    assert refreshed.created_ms == session.created_ms
    clock.advance(600)
    app.get("/protected", status=303)


def test_short_idle_timeouts_refresh_within_a_quarter(make_app: AppFactory) -> None:
    app = make_app(idle_timeout=40)
    assert app.manager.touch_interval_ms == 10_000


def test_last_seen_is_throttled(make_app: AppFactory) -> None:
    app = make_app()
    clock = Clock()
    app.manager.clock = clock
    app.login("bob@example.com")
    created = clock.now
    clock.advance(59)
    app.get("/protected")
    assert app.manager.sessions("bob@example.com")[0].last_seen_ms == created
    clock.advance(1)
    app.get("/protected")
    assert app.manager.sessions("bob@example.com")[0].last_seen_ms == clock.now


def test_max_sessions_evicts_the_oldest(make_app: AppFactory) -> None:
    app = make_app(max_sessions=2)
    clock = Clock()
    app.manager.clock = clock
    clients = []
    for _ in range(3):
        client = fresh_client(app)
        client.login("bob@example.com")
        clients.append(client)
        clock.advance(1)
    clients[0].get("/protected", status=303)
    clients[1].get("/protected", status=200)
    clients[2].get("/protected", status=200)
    assert len(app.manager.sessions("bob@example.com")) == 2


def test_revoke_all_but_the_current_one(app: JeffTestApp) -> None:
    other = fresh_client(app)
    other.login("bob@example.com")
    app.login("bob@example.com")
    current = app.get("/whoami").json["session_id"]
    assert app.manager.revoke_all("bob@example.com", keep=current) == 1
    app.get("/protected", status=200)
    other.get("/protected", status=303)
    assert [s.id for s in app.manager.sessions("bob@example.com")] == [current]


def test_revoking_what_is_not_there(app: JeffTestApp) -> None:
    assert app.manager.revoke("nobody@example.com", "A" * 22) is False
    assert app.manager.revoke_all("nobody@example.com") == 0
    assert app.manager.sessions("nobody@example.com") == []


@memory_only
def test_remember_within_a_request_updates_that_request(
    make_app: AppFactory, make_config: ConfigFactory
) -> None:
    """After remember(), request.jeff_session and the userid are the new session's."""
    from pyramid.security import forget, remember

    def view(request: object) -> dict[str, object]:
        before = request.authenticated_userid  # type: ignore[attr-defined]
        assert request.jeff_session is None  # type: ignore[attr-defined]  # reified now
        headers = remember(request, "carol@example.com")
        during = request.authenticated_userid  # type: ignore[attr-defined]
        session = request.jeff_session  # type: ignore[attr-defined]
        forget(request)
        after = request.authenticated_userid  # type: ignore[attr-defined]
        return {
            "before": before,
            "during": during,
            "after": after,
            "session": session.key,
            "headers": len(headers),
        }

    base = make_app()
    config = make_config(base.app.registry.settings)
    config.add_route("both", "/both")
    config.add_view(view, route_name="both", renderer="json")
    app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/both").json == {
        "before": None,
        "during": "carol@example.com",
        "after": None,
        "session": "carol@example.com",
        "headers": 1,
    }


def test_meta_must_be_small_and_serialisable(app: JeffTestApp) -> None:
    with pytest.raises(TypeError):
        app.manager.create("bob@example.com", meta={"when": object()})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        app.manager.create("bob@example.com", meta={"blob": "x" * 5000})
    with pytest.raises(TypeError):
        app.manager.create("bob@example.com", meta=["not", "a", "dict"])  # type: ignore[arg-type]
    _session, _ = app.manager.create(
        "bob@example.com", meta={"n": 1, "f": 1.0, "b": b"\x00\xff", "l": [1, "x"], 3: None}
    )
    (stored,) = app.manager.sessions("bob@example.com")
    assert stored.meta == {"n": 1, "f": 1.0, "b": b"\x00\xff", "l": [1, "x"], 3: None}
    assert isinstance(stored.meta["f"], float)


@pytest.mark.parametrize(
    "key",
    ["", "x" * 513, "nul\x00byte", "cafe\u0301", "tab\tkey", 3.5, None, True, b"bytes"],
)
@memory_only
def test_bad_keys_are_refused_before_any_write(app: JeffTestApp, key: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        app.manager.create(key)  # type: ignore[arg-type]


def test_reasonable_keys_are_accepted(app: JeffTestApp) -> None:
    for key in ("user::a@example.com", "*?[glob]{brace}:", "caf\u00e9", "x" * 512, "\U0001f600"):
        app.manager.create(key)
        assert len(app.manager.sessions(key)) == 1

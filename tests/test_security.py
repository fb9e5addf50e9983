"""Black-box security: cookie attributes, tokens, rotation, fixation, forged logouts."""

from __future__ import annotations

import base64
from typing import Any

from .conftest import AppFactory, ConfigFactory, JeffTestApp
from .helpers import (
    CountingStore,
    cookie_attributes,
    cookie_value,
    fresh_client,
    get_with_cookie_header,
    login_cookie,
    memory_only,
    set_cookies,
)

COOKIE = "__Host-jeff"


@memory_only
def test_cookie_attributes_follow_the_settings(make_app: AppFactory) -> None:
    app = make_app(
        cookie_name="sid", cookie_samesite="Strict", cookie_domain="example.com", max_age=600
    )
    (header,) = set_cookies(app.login("bob@example.com"))
    attributes = cookie_attributes(header)
    # A Domain rules out the __Host- prefix; __Secure- remains.
    assert attributes["="].startswith("__Secure-sid=")
    assert attributes["domain"] == "example.com"
    assert attributes["samesite"] == "Strict"
    assert attributes["max-age"] == "600"
    assert "httponly" in attributes
    assert "secure" in attributes

    insecure = make_app(cookie_secure="false")
    (header,) = set_cookies(insecure.login("bob@example.com"))
    attributes = cookie_attributes(header)
    assert attributes["="].startswith("jeff=")
    assert "secure" not in attributes
    assert "httponly" in attributes


@memory_only
def test_tokens_are_256_bits_and_never_repeat(app: JeffTestApp) -> None:
    tokens = set()
    for _ in range(200):
        value = login_cookie(fresh_client(app))
        _digest, _session_id, token = value.split(".")
        raw = base64.urlsafe_b64decode(token + "=")
        assert len(raw) == 32
        tokens.add(token)
    assert len(tokens) == 200
    # Every base64url character shows up: no fixed or biased positions.
    assert len(set("".join(tokens))) == 64


@memory_only
def test_the_cookie_holds_no_plaintext_key(app: JeffTestApp) -> None:
    key = "alice.secret@example.com"
    value = login_cookie(app, key)
    assert key not in value
    for part in value.split("."):
        decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        assert b"alice" not in decoded


def test_login_rotates_away_the_previous_session(app: JeffTestApp) -> None:
    first = login_cookie(app)
    second = login_cookie(app)
    assert first != second
    assert len(app.manager.sessions("bob@example.com")) == 1
    response = get_with_cookie_header(app, f"{COOKIE}={first}")
    assert response.text == "anonymous"
    assert get_with_cookie_header(app, f"{COOKIE}={second}").text == "hello bob@example.com"


def test_fixation_attacker_cookie_dies_at_victim_login(app: JeffTestApp) -> None:
    attacker = fresh_client(app)
    planted = login_cookie(attacker, "mallory@example.com")
    planted_header = {"HTTP_COOKIE": f"{COOKIE}={planted}"}
    victim = fresh_client(app)
    assert victim.get("/public", extra_environ=planted_header).text == "hello mallory@example.com"
    response = victim.post(
        "/login", {"key": "victim@example.com"}, extra_environ=planted_header, status=303
    )
    assert cookie_value(set_cookies(response)[0]) != planted
    assert get_with_cookie_header(app, f"{COOKIE}={planted}").text == "anonymous"
    assert app.manager.sessions("mallory@example.com") == []


def test_attacker_chosen_cookie_is_not_adopted(app: JeffTestApp) -> None:
    chosen = "A" * 22 + "." + "B" * 22 + "." + "C" * 43
    response = app.post(
        "/login",
        {"key": "bob@example.com"},
        extra_environ={"HTTP_COOKIE": f"{COOKIE}={chosen}"},
        status=303,
    )
    assert cookie_value(set_cookies(response)[0]) != chosen
    assert get_with_cookie_header(app, f"{COOKIE}={chosen}").text == "anonymous"


def test_tampered_token_is_anonymous_and_expired(app: JeffTestApp) -> None:
    value = login_cookie(app)
    flipped = value[:-1] + ("A" if value[-1] != "A" else "B")
    response = get_with_cookie_header(app, f"{COOKIE}={flipped}")
    assert response.status_int == 200
    assert response.text == "anonymous"
    (header,) = set_cookies(response)
    assert cookie_attributes(header)["max-age"] == "0"
    # The real session is untouched by the forgery.
    assert get_with_cookie_header(app, f"{COOKIE}={value}").text == "hello bob@example.com"


def test_the_public_session_id_is_useless_as_a_credential(app: JeffTestApp) -> None:
    value = login_cookie(app)
    digest, session_id, _ = value.split(".")
    (session,) = app.manager.sessions("bob@example.com")
    assert session.id == session_id
    for forged in (
        session_id,
        f"{digest}.{session_id}",
        f"{digest}.{session_id}.{session_id}{session_id}A",
        f"{digest}.{session_id}." + "A" * 43,
    ):
        assert get_with_cookie_header(app, f"{COOKIE}={forged}").text == "anonymous"


@memory_only
def test_a_cookie_without_the_prefix_is_ignored(app: JeffTestApp) -> None:
    value = login_cookie(app)
    assert get_with_cookie_header(app, f"jeff={value}").text == "anonymous"


@memory_only
def test_forbidden_redirect_carries_only_a_relative_next(
    app: JeffTestApp, make_app: AppFactory, make_config: ConfigFactory
) -> None:
    response = app.get("/protected", extra_environ={"HTTP_HOST": "evil.example"}, status=303)
    assert response.location.endswith("/login?next=%2Fprotected")
    # A catch-all route lets off-site-looking paths reach the forbidden view (the test
    # app would answer them 404, with no Location to check).
    from .app import Root

    base = make_app()
    config = make_config(base.app.registry.settings, root_factory=Root)
    config.add_route("anything", "/*rest")
    config.add_view(lambda r: "x", route_name="anything", permission="view", renderer="string")
    import webtest

    catch_all = webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(base.extra_environ))
    on_site = catch_all.get("/on/site", status=303)
    assert on_site.location == "https://example.com/login?next=%2Fon%2Fsite"
    for path in ("//evil.example/protected", "/\\evil.example/x", "/.//evil.example/x"):
        response = catch_all.get(path, status=303)
        assert response.location == "https://example.com/login", path  # no next at all


def test_login_as_another_key_ends_the_old_session_without_a_read(app: JeffTestApp) -> None:
    old = login_cookie(app, "mallory@example.com")
    counting = CountingStore(app.manager.store)
    app.manager.store = counting  # type: ignore[assignment]
    app.reset()
    app.post(
        "/login",
        {"key": "victim@example.com"},
        extra_environ={"HTTP_COOKIE": f"{COOKIE}={old}"},
        status=303,
    )
    assert counting.calls == {"create": 1, "revoke": 1}
    assert app.manager.sessions("mallory@example.com") == []


def test_a_failed_login_never_logs_the_browser_out(app: JeffTestApp) -> None:
    from pyramid_jeff import StoreUnavailable

    old = login_cookie(app, "mallory@example.com")
    store = app.manager.store

    class FailingCreate:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def create(self, *args: Any, **kwargs: Any) -> int:
            raise StoreUnavailable("down")

    app.manager.store = FailingCreate()  # type: ignore[assignment]
    app.reset()
    response = app.post(
        "/login",
        {"key": "victim@example.com"},
        extra_environ={"HTTP_COOKIE": f"{COOKIE}={old}"},
        status=503,
    )
    assert "Set-Cookie" not in response.headers
    app.manager.store = store
    assert get_with_cookie_header(app, f"{COOKIE}={old}").text == "hello mallory@example.com"


def test_a_forged_logout_ends_nothing(app: JeffTestApp) -> None:
    value = login_cookie(app)
    digest, session_id, _ = value.split(".")
    forged = f"{digest}.{session_id}." + "A" * 43
    app.reset()
    app.post("/logout", extra_environ={"HTTP_COOKIE": f"{COOKIE}={forged}"}, status=303)
    assert get_with_cookie_header(app, f"{COOKIE}={value}").text == "hello bob@example.com"


def test_no_cookie_is_written_with_a_503(make_app: AppFactory, make_config: ConfigFactory) -> None:
    """A dead cookie is normally expired, but not when the response is a store outage."""
    from pyramid_jeff import StoreUnavailable

    base = make_app()
    config = make_config(base.app.registry.settings)

    def view(request: Any) -> Any:
        assert request.jeff_session is None  # the cookie named a dead session
        raise StoreUnavailable("the store went away mid-request")

    config.add_route("fails", "/fails")
    config.add_view(view, route_name="fails")
    config.add_route("reads", "/reads")
    config.add_view(lambda r: str(r.jeff_session), route_name="reads", renderer="string")
    import webtest

    app = webtest.TestApp(config.make_wsgi_app(), extra_environ=dict(base.extra_environ))
    dead = "A" * 22 + "." + "B" * 22 + "." + "C" * 43
    # The same cookie on a page that reads the session and answers: expired.
    response = app.get("/reads", extra_environ={"HTTP_COOKIE": f"{COOKIE}={dead}"}, status=200)
    assert response.text == "None"
    (header,) = set_cookies(response)
    assert cookie_attributes(header)["max-age"] == "0"
    response = app.get("/fails", extra_environ={"HTTP_COOKIE": f"{COOKIE}={dead}"}, status=503)
    assert "Set-Cookie" not in response.headers


@memory_only
def test_latin1_blanks_around_our_cookie_are_not_ignored(app: JeffTestApp) -> None:
    value = login_cookie(app)
    for header in (f"{COOKIE}=\xa0{value}", f"{COOKIE}={value}\x85", f"\xa0{COOKIE}={value}"):
        assert get_with_cookie_header(app, header).text == "anonymous"
    assert get_with_cookie_header(app, f" {COOKIE}={value} ").text == "hello bob@example.com"


def test_meta_cannot_be_changed_through_a_session(app: JeffTestApp) -> None:
    app.manager.create("bob@example.com", meta={"roles": ["user"]})
    (session,) = app.manager.sessions("bob@example.com")
    session.meta["roles"].append("admin")
    (again,) = app.manager.sessions("bob@example.com")
    assert again.meta == {"roles": ["user"]}

"""Events, re-authentication, revoke everyone, the login policy, passive views, logout
reasons, privacy settings and bearer credentials, driven over HTTP through an
application written the way Pyramid apps are (tests/account_app.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import webtest
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISecurityPolicy

from pyramid_jeff import Credential, SessionManager, TooManySessions
from pyramid_jeff.events import EveryoneRevoked, SessionCreated, SessionEnded
from pyramid_jeff.testing import CountingStore

from . import account_app
from .account_app import EVENTS
from .conftest import ALL_STORES, clean_store_url

HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "example.com"}
ALICE = "alice@example.com"
BOB = "bob@example.com"


class Clock:
    """The manager's clock, moved by the tests."""

    def __init__(self, manager: SessionManager) -> None:
        self.now = manager.clock()
        manager.clock = self

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class App(webtest.TestApp):
    manager: SessionManager

    def log_in(self, key: str = ALICE, **kw: Any) -> webtest.TestResponse:
        return self.post("/login", {"key": key}, **kw)

    def browser(self) -> App:
        """Another browser on the same application."""
        other = App(self.app, extra_environ=dict(HTTPS))
        other.manager = self.manager
        return other


Factory = Callable[..., App]


@pytest.fixture(params=ALL_STORES)
def store_url(request: pytest.FixtureRequest) -> str:
    """Every feature on every store."""
    return clean_store_url(request, request.param)


def build_app(
    store_url: str,
    *,
    require_csrf: bool = False,
    tm: bool = False,
    configure: Callable[[Any], None] | None = None,
    **jeff: Any,
) -> App:
    settings = {"jeff.store": store_url, "jeff.login_url": "/login"}
    settings.update({f"jeff.{name}": str(value) for name, value in jeff.items()})
    wsgi = account_app.make_app(settings, csrf=require_csrf, tm=tm, configure=configure)
    app = App(wsgi, extra_environ=dict(HTTPS))
    app.manager = wsgi.registry.getUtility(ISecurityPolicy).manager
    return app


@pytest.fixture
def make_app(store_url: str) -> Factory:
    EVENTS.clear()
    return lambda **kw: build_app(store_url, **kw)


def where(response: webtest.TestResponse) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(response.headers["Location"])
    return parts.path, parse_qs(parts.query)


def session_id(app: App, key: str = ALICE) -> str:
    (newest, *_) = app.manager.sessions(key)
    return newest.id


def ended(reason: str | None = None) -> list[tuple[str, str, str]]:
    return [
        (e.key, e.session_id, e.reason)
        for e in EVENTS
        if isinstance(e, SessionEnded) and reason in (None, e.reason)
    ]


# --- Events ---------------------------------------------------------------------------


def test_a_login_sends_session_created_after_the_store_write(make_app: Factory) -> None:
    app = make_app()
    stored_at_event: list[set[str]] = []

    def check(event: SessionCreated) -> None:
        stored_at_event.append({s.id for s in event.request.jeff.sessions(event.key)})

    app.app.registry.registerHandler(check, (SessionCreated,))
    app.log_in()
    (created,) = [e for e in EVENTS if isinstance(e, SessionCreated)]
    assert created.request is not None
    assert created.key == ALICE
    assert created.session.id == session_id(app)
    assert stored_at_event == [{created.session.id}]
    assert ended() == []


def test_each_way_a_session_ends_sends_its_reason(make_app: Factory) -> None:
    app = make_app(max_sessions=2)
    clock = Clock(app.manager)
    app.log_in()
    clock.advance(1)
    first = session_id(app)
    app.log_in()  # the same browser logs in again: its old session is replaced
    second = session_id(app)
    assert ended() == [(ALICE, first, "replaced")]
    phone, tablet = app.browser(), app.browser()
    clock.advance(1)
    phone.log_in()
    clock.advance(1)
    tablet.log_in()  # the third device: the oldest (this browser's) is evicted
    assert ended("evicted") == [(ALICE, second, "evicted")]
    tablet.post("/logout")
    assert ended("logout")[0][2] == "logout"
    phone_id = session_id(app)
    EVENTS.clear()
    # Outside a request (a script, pjeff): request is None.
    assert app.manager.revoke(ALICE, phone_id)
    (event,) = EVENTS
    assert isinstance(event, SessionEnded)
    assert (event.request, event.key, event.session_id, event.reason) == (
        None,
        ALICE,
        phone_id,
        "revoked",
    )


def test_revoke_all_sends_one_event_per_session_it_ended(make_app: Factory) -> None:
    app = make_app()
    browsers = [app.browser() for _ in range(3)]
    for browser in browsers:
        browser.log_in()
    ids = {s.id for s in app.manager.sessions(ALICE)}
    EVENTS.clear()
    assert app.manager.revoke_all(ALICE) == 3
    assert sorted(ended()) == sorted((ALICE, i, "revoked") for i in ids)
    assert app.manager.revoke_all(ALICE) == 0
    assert len(ended()) == 3  # nothing ended twice


def test_a_login_whose_response_fails_ends_as_a_logout(make_app: Factory) -> None:
    app = make_app()
    with pytest.raises(RuntimeError):
        app.post("/fail-after-login", {"key": ALICE})
    (created,) = [e for e in EVENTS if isinstance(e, SessionCreated)]
    assert ended() == [(ALICE, created.session.id, "logout")]
    assert app.manager.sessions(ALICE) == []


def test_a_raising_subscriber_undoes_nothing(
    make_app: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    calls: list[str] = []

    def broken(event: SessionCreated) -> None:
        calls.append("broken")
        raise ValueError("audit log is down")

    registry = app.app.registry
    registry.registerHandler(broken, (SessionCreated,))
    with caplog.at_level(logging.ERROR, logger="pyramid_jeff.events"):
        res = app.log_in()
    assert res.status_int == 303 and "Set-Cookie" in res.headers
    assert calls == ["broken"]
    assert app.get("/home").text == f"home of {ALICE}"  # logged in all the same
    assert any(isinstance(e, SessionCreated) for e in EVENTS)  # the others ran
    assert "a subscriber to SessionCreated raised" in caplog.text


def test_a_logout_tells_its_subscribers_whose_session_ended_without_another_read() -> None:
    wsgi = account_app.make_app({"jeff.store": "pyramid_jeff.testing.counting_store"})
    app = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    store = wsgi.registry.getUtility(ISecurityPolicy).manager.store
    EVENTS.clear()
    app.post("/login", {"key": ALICE})
    store.reset()
    app.post("/logout")
    assert store.calls == {"get": 1, "revoke": 1}  # the verify read, then the logout
    assert [(e.key, e.reason) for e in EVENTS if isinstance(e, SessionEnded)] == [
        (ALICE, "logout")
    ]


def test_a_login_again_tells_whose_session_it_replaced_without_another_read() -> None:
    wsgi = account_app.make_app({"jeff.store": "pyramid_jeff.testing.counting_store"})
    app = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    store = wsgi.registry.getUtility(ISecurityPolicy).manager.store
    app.post("/login", {"key": ALICE})
    EVENTS.clear()
    store.reset()
    app.post("/login", {"key": ALICE, "as_before": "1"})
    assert store.calls == {"get": 1, "create": 1, "revoke": 1}
    assert [e.reason for e in EVENTS if isinstance(e, SessionEnded)] == ["replaced"]


# --- Re-authentication -----------------------------------------------------------------


def test_recent_login_sends_an_old_login_to_confirm_it(make_app: Factory) -> None:
    app = make_app()
    clock = Clock(app.manager)
    app.log_in()
    assert app.get("/password").text == "confirm your new password"
    clock.advance(301)
    res = app.get("/password?step=1", status=303)
    assert where(res) == (
        "/login",
        {"next": ["/password?step=1"], "jeff_reason": ["reauthenticate"]},
    )
    page = app.get("/login?next=/password&jeff_reason=reauthenticate").json
    assert page["reason"] == "reauthenticate"
    assert app.get("/home").text == f"home of {ALICE}"  # still logged in elsewhere
    # API clients get 401, a POST is redirected without next.
    app.get("/password", headers={"X-Requested-With": "XMLHttpRequest"}, status=401)
    res = app.post("/password", status=303)
    assert where(res) == ("/login", {"jeff_reason": ["reauthenticate"]})
    # A new login satisfies it.
    app.log_in()
    assert app.get("/password").text == "confirm your new password"


def test_recent_login_of_an_anonymous_request_is_the_usual_redirect() -> None:
    app = build_app("memory://")
    res = app.get("/password", status=303)
    assert where(res) == ("/login", {"next": ["/password"]})


def test_recent_login_wins_over_the_apps_own_forbidden_view() -> None:
    # The application's forbidden view sees an authenticated request and would answer
    # 403; a login too old for the view is sent to log in again all the same.
    from pyramid.httpexceptions import HTTPForbidden
    from pyramid.response import Response

    def own_forbidden(exc: HTTPForbidden, request: Any) -> Response:
        return Response("the app's own 403", status=403)

    def configure(config: Any) -> None:
        config.add_forbidden_view(own_forbidden)

    app = build_app("memory://", configure=configure)
    clock = Clock(app.manager)
    app.log_in()
    clock.advance(301)
    res = app.get("/password", status=303)
    assert where(res) == ("/login", {"next": ["/password"], "jeff_reason": ["reauthenticate"]})
    assert app.get("/nowhere-allowed", status=403).text == "the app's own 403"


def test_recent_login_goes_to_jeff_redirect_when_set() -> None:
    app = build_app("memory://", redirect="tests.account_app.custom_redirect")
    clock = Clock(app.manager)
    app.log_in()
    clock.advance(301)
    res = app.get("/password", status=302)
    assert res.headers["Location"] == "https://example.com/custom-login?why=reauthenticate"


@pytest.mark.parametrize("value", [0, -5, "300", 2.5, True])
def test_a_bad_recent_login_option_fails_at_start_up(value: Any) -> None:
    from pyramid.config import Configurator

    config = Configurator(settings={})
    config.include("pyramid_jeff")
    config.add_route("x", "/x")
    config.add_view(lambda r: "x", route_name="x", renderer="string", jeff_recent_login=value)
    with pytest.raises(ConfigurationError, match="jeff_recent_login"):
        config.commit()


# --- The password and e-mail change recipes ---------------------------------------------


def test_a_password_change_ends_every_other_session_and_renews_this_one(
    make_app: Factory,
) -> None:
    app = make_app()
    phone = app.browser()
    phone.log_in()
    app.log_in()
    before = session_id(app)
    res = app.post("/password", status=303)
    assert where(res)[0] == "/home"
    assert app.get("/home").text == f"home of {ALICE}"
    (after,) = app.manager.sessions(ALICE)
    assert after.id != before  # a fresh session for this browser (ASVS 7.4.3)
    res = phone.get("/home", status=303)
    assert where(res) == ("/login", {"next": ["/home"], "jeff_reason": ["revoked"]})


def test_an_email_change_moves_this_browser_to_the_new_key(make_app: Factory) -> None:
    app = make_app()
    phone = app.browser()
    phone.log_in()
    app.log_in()
    app.post("/email", {"email": "alice@new.example"}, status=303)
    assert app.get("/home").text == "home of alice@new.example"
    assert app.manager.sessions(ALICE) == []
    phone.get("/home", status=303)


# --- Revoke everyone -------------------------------------------------------------------


def test_revoke_everyone_ends_every_key_and_later_logins_work(make_app: Factory) -> None:
    app = make_app()
    bob = app.browser()
    bob.log_in(BOB)
    app.log_in()
    app.post("/everyone", status=303)
    assert next(e for e in EVENTS if isinstance(e, EveryoneRevoked)).request is not None
    res = bob.get("/home", status=303)
    assert where(res) == ("/login", {"next": ["/home"], "jeff_reason": ["revoked"]})
    assert app.manager.sessions(BOB) == []
    bob.log_in(BOB)
    assert bob.get("/home").text == f"home of {BOB}"


def test_revoke_everyone_costs_no_extra_store_call_per_request() -> None:
    wsgi = account_app.make_app({"jeff.store": "pyramid_jeff.testing.counting_store"})
    app = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    store = wsgi.registry.getUtility(ISecurityPolicy).manager.store
    assert isinstance(store, CountingStore)
    app.post("/login", {"key": ALICE})
    store.reset()
    app.get("/home")
    assert store.calls == {"get": 1}
    wsgi.registry.getUtility(ISecurityPolicy).manager.revoke_everyone()
    app.post("/login", {"key": ALICE})
    store.reset()
    app.get("/home")
    assert store.calls == {"get": 1}


# --- Login policy ----------------------------------------------------------------------


def test_reject_refuses_a_login_past_the_cap(make_app: Factory) -> None:
    app = make_app(max_sessions=2, max_sessions_policy="reject")
    first, second, third = app.browser(), app.browser(), app.browser()
    first.log_in()
    second.log_in()
    res = third.log_in(status=409)
    assert res.text == f"too many sessions for {ALICE} (2)"
    assert "Set-Cookie" not in res.headers
    assert len(app.manager.sessions(ALICE)) == 2
    assert ended("evicted") == []
    # The browser that already holds one may log in again (its old session makes room).
    first.log_in(status=303)
    first.post("/logout")
    third.log_in(status=303)


@pytest.mark.parametrize("policy", ["evict", "reject"])
def test_forged_cookies_of_the_key_never_raise_the_cap(make_app: Factory, policy: str) -> None:
    # The key digest is no secret: cookies naming it with made-up sessions are
    # anyone's to send, and must not count as sessions that make room.
    app = make_app(max_sessions=2, max_sessions_policy=policy)
    first, second = app.browser(), app.browser()
    first.log_in()
    second.log_in()
    digest = first.cookies["__Host-jeff"].split(".")[0]
    forged = "; ".join(f"__Host-jeff={Credential.mint(ALICE).encode()}" for _ in range(10))
    assert forged.count(digest) == 10
    attacker = app.browser()
    for _ in range(3):
        res = attacker.post("/login", {"key": ALICE}, headers={"Cookie": forged}, status="*")
        assert res.status_int == (409 if policy == "reject" else 303)
    assert len(app.manager.sessions(ALICE)) == 2


def test_reject_raises_from_the_manager_too(store_url: str) -> None:
    wsgi = account_app.make_app(
        {"jeff.store": store_url, "jeff.max_sessions": "1", "jeff.max_sessions_policy": "reject"}
    )
    manager = wsgi.registry.getUtility(ISecurityPolicy).manager
    manager.create(ALICE)
    with pytest.raises(TooManySessions) as caught:
        manager.create(ALICE)
    assert (caught.value.key, caught.value.max_sessions) == (ALICE, 1)


# --- Passive views ---------------------------------------------------------------------


@pytest.mark.parametrize("tm", [False, True], ids=["plain", "pyramid_tm"])
def test_a_passive_view_never_keeps_an_idle_session_alive(make_app: Factory, tm: bool) -> None:
    # pyramid_tm reads authenticated_userid before the view is known: the refresh of
    # last_seen waits for the response all the same.
    app = make_app(idle_timeout=600, tm=tm)
    clock = Clock(app.manager)
    app.log_in()
    (session,) = app.manager.sessions(ALICE)
    for _ in range(2):
        clock.advance(250)
        assert app.get("/poll").json == {"unread": 0}
    (polled,) = app.manager.sessions(ALICE)
    assert polled.last_seen_ms == session.last_seen_ms
    clock.advance(100)  # 600 s after the login, with polls all along: idle
    res = app.get("/poll", status=303)
    assert where(res) == ("/login", {"next": ["/poll"], "jeff_reason": ["idle"]})


def test_an_active_view_refreshes_last_seen(make_app: Factory) -> None:
    app = make_app(idle_timeout=600, tm=True)
    clock = Clock(app.manager)
    app.log_in()
    for _ in range(5):
        clock.advance(200)
        assert app.get("/home").text == f"home of {ALICE}"
    (session,) = app.manager.sessions(ALICE)
    assert session.last_seen_ms == clock.now


# --- Why a browser was logged out ------------------------------------------------------


def login_reason(app: App) -> Any:
    return app.get("/login").json["reason"]


def cookie_header(value: str) -> dict[str, str]:
    # TestApp.set_cookie would quote a value holding dots.
    return {"Cookie": f"__Host-jeff={value}"}


def test_the_login_page_tells_why_the_session_ended(make_app: Factory) -> None:
    app = make_app(max_age=3600, idle_timeout=600, max_sessions=1)
    clock = Clock(app.manager)
    assert login_reason(app) is None  # never logged in
    app.log_in()
    clock.advance(601)
    assert login_reason(app) == "idle"
    app.log_in()
    for _ in range(7):
        clock.advance(500)
        assert app.get("/home").status_int == 200
    clock.advance(101)  # 3601 s after the login, never idle
    assert login_reason(app) == "expired"
    app.log_in()
    app.manager.revoke(ALICE, session_id(app))
    assert login_reason(app) == "revoked"
    app.log_in()
    clock.advance(1)
    app.browser().log_in()  # a newer device takes the only place
    assert login_reason(app) == "evicted"
    app.log_in()
    cookie = app.cookies["__Host-jeff"]
    app.post("/logout")
    # The cookie of a session that was logged out: nothing left to tell.
    assert app.get("/login", headers=cookie_header(cookie)).json["reason"] == "ended"


def test_a_query_string_that_is_not_utf8_is_no_reason_and_no_500(make_app: Factory) -> None:
    app = make_app()
    res = app.get("/home?x=%ff&jeff_reason=%ff", status=303)
    assert where(res) == ("/login", {"next": ["/home?x=%ff&jeff_reason=%ff"]})


def test_the_reason_survives_the_redirect_and_is_never_taken_blindly(make_app: Factory) -> None:
    app = make_app()
    app.log_in()
    app.manager.revoke_all(ALICE)
    res = app.get("/home", status=303)
    assert where(res) == ("/login", {"next": ["/home"], "jeff_reason": ["revoked"]})
    assert "Max-Age=0" in res.headers["Set-Cookie"]  # the dead cookie is expired
    assert app.get(res.headers["Location"]).json["reason"] == "revoked"
    assert app.get("/login?jeff_reason=<script>").json["reason"] is None


def test_a_tombstone_tells_nothing_to_a_forged_cookie(make_app: Factory) -> None:
    app = make_app()
    app.log_in()
    real = app.cookies["__Host-jeff"]
    app.manager.revoke_all(ALICE)
    digest, sid, token = real.split(".")
    forged = f"{digest}.{sid}.{'A' * len(token)}"
    assert app.browser().get("/login", headers=cookie_header(forged)).json["reason"] == "ended"


# --- Privacy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "address", "kept"),
    [
        ("full", "192.0.2.77", "192.0.2.77"),
        ("truncated", "192.0.2.77", "192.0.2.0"),
        ("truncated", "2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("truncated", "::ffff:192.0.2.77", "192.0.2.0"),
        ("truncated", "not-an-address", None),
        ("none", "192.0.2.77", None),
    ],
)
def test_record_ip(mode: str, address: str, kept: str | None) -> None:
    app = build_app("memory://", record_ip=mode)
    app.log_in(extra_environ={"REMOTE_ADDR": address})
    (session,) = app.manager.sessions(ALICE)
    assert session.ip == kept


@pytest.mark.parametrize(("record", "kept"), [(True, "Firefox/1"), (False, None)])
def test_record_user_agent(record: bool, kept: str | None) -> None:
    app = build_app("memory://", record_user_agent=str(record).lower())
    app.log_in(headers={"User-Agent": "Firefox/1"})
    (session,) = app.manager.sessions(ALICE)
    assert session.user_agent == kept


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("jeff.max_sessions_policy", "oldest"),
        ("jeff.record_ip", "partial"),
        ("jeff.record_user_agent", "maybe"),
        ("jeff.bearer", "yes please"),
    ],
)
def test_bad_account_settings_fail_at_start_up(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        account_app.make_app({key: value})


# --- Bearer credentials ----------------------------------------------------------------


def api_token(app: App, key: str = ALICE) -> str:
    res = app.post_json("/api/login", {"key": key})
    assert "Set-Cookie" not in res.headers or "jeff=" not in res.headers["Set-Cookie"]
    token: str = res.json["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_bearer_credential_is_verified_like_the_cookie(make_app: Factory) -> None:
    app = make_app(bearer="true")
    token = api_token(app)
    client = app.browser()
    assert client.get("/home", headers=bearer(token)).text == f"home of {ALICE}"
    assert client.get("/home", headers={"Authorization": f"bearer  {token}"}).status_int == 200
    app.manager.revoke_all(ALICE)
    # An API client is told so as RFC 6750 says, never sent to an HTML login page.
    res = client.get("/home", headers=bearer(token), status=401)
    assert res.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert "Set-Cookie" not in res.headers  # no cookie to expire


def test_bearer_is_off_by_default() -> None:
    app = build_app("memory://")
    token = api_token(app)
    app.browser().get("/home", headers=bearer(token), status=303)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer ",
        "Bearer not-a-credential",
        "Bearer {token}, Bearer {token}",  # two headers, as a WSGI server joins them
        "Bearer {token}" + "A" * 300,
        "Bearer {token} extra",
        "Basic {token}",
        "Bearer\t{token}",
    ],
)
def test_malformed_bearer_headers_are_anonymous_without_a_store_call(header: str) -> None:
    settings = {"jeff.store": "pyramid_jeff.testing.counting_store", "jeff.bearer": "true"}
    wsgi = account_app.make_app(settings)
    app = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    token = app.post_json("/api/login", {"key": ALICE}).json["token"]
    store = wsgi.registry.getUtility(ISecurityPolicy).manager.store
    store.reset()
    other = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    sent = header.format(token=token)
    expected = 401 if sent.startswith("Bearer ") else 303  # else not ours: the usual redirect
    other.get("/home", headers={"Authorization": sent}, status=expected)
    assert store.calls == {}


def test_a_cookie_and_a_bearer_credential_together_are_refused(make_app: Factory) -> None:
    app = make_app(bearer="true")
    token = api_token(app, BOB)
    app.log_in()  # this browser now also holds a cookie
    assert app.get("/home").text == f"home of {ALICE}"
    res = app.get("/home", headers=bearer(token), status=401)
    assert "Max-Age=0" not in res.headers.get("Set-Cookie", "")  # the cookie is left alone


def test_bearer_requests_need_no_csrf_token_cookie_requests_do(make_app: Factory) -> None:
    app = make_app(bearer="true", csrf="true", require_csrf=True)
    _, credential = app.manager.create(BOB)
    client = app.browser()
    res = client.post("/password", headers=bearer(credential.encode()), status=303)
    assert where(res)[0] == "/home"  # no CSRF token, no Origin: accepted
    cookie = cookie_header(app.manager.create(ALICE)[1].encode())
    app.browser().post("/password", headers=cookie, status=400)  # ambient authority: refused
    app.browser().post("/login", {"key": ALICE}, status=400)  # so is an anonymous POST


def test_a_bearer_logout_ends_its_session(make_app: Factory) -> None:
    app = make_app(bearer="true")
    token = api_token(app)
    client = app.browser()
    client.post("/logout", headers=bearer(token), status=303)
    assert app.manager.sessions(ALICE) == []
    assert ended("logout")

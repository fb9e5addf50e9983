"""The events a login and each way a session ends send, and what their subscribers see."""

from __future__ import annotations

import logging

import pytest

from pyramid_jeff.events import SessionCreated, SessionEnded

from ..account_app import EVENTS
from .client import (
    ALICE,
    Clock,
    Factory,
    counting_app,
    ended,
    session_id,
)

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
    app, store, _ = counting_app()
    EVENTS.clear()
    app.post("/login", {"key": ALICE})
    store.reset()
    app.post("/logout")
    assert store.calls == {"get": 1, "revoke": 1}  # the verify read, then the logout
    assert [(e.key, e.reason) for e in EVENTS if isinstance(e, SessionEnded)] == [
        (ALICE, "logout")
    ]


def test_a_login_again_tells_whose_session_it_replaced_without_another_read() -> None:
    app, store, _ = counting_app()
    app.post("/login", {"key": ALICE})
    EVENTS.clear()
    store.reset()
    app.post("/login", {"key": ALICE, "as_before": "1"})
    assert store.calls == {"get": 1, "create": 1, "revoke": 1}
    assert [e.reason for e in EVENTS if isinstance(e, SessionEnded)] == ["replaced"]

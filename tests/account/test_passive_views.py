"""Passive views (polls) never keep an idle session alive; active ones refresh it."""

from __future__ import annotations

import pytest

from .client import (
    ALICE,
    Clock,
    Factory,
    where,
)

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

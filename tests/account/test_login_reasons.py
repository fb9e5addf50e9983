"""Why a browser was logged out: the login page is told, and never takes a reason blindly."""

from __future__ import annotations

from ..helpers import memory_only
from .client import (
    ALICE,
    Clock,
    Factory,
    cookie_header,
    login_reason,
    session_id,
    where,
)

# --- Why a browser was logged out ------------------------------------------------------


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


@memory_only
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

"""The password and e-mail change recipes, revoke everyone, and the login policy at the cap."""

from __future__ import annotations

import pytest

from pyramid_jeff import Credential, TooManySessions
from pyramid_jeff.events import EveryoneRevoked
from pyramid_jeff.testing import jeff_policy

from .. import account_app
from ..account_app import EVENTS
from .client import (
    ALICE,
    BOB,
    Factory,
    counting_app,
    ended,
    session_id,
    where,
)

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
    app, store, wsgi = counting_app()
    app.post("/login", {"key": ALICE})
    store.reset()
    app.get("/home")
    assert store.calls == {"get": 1}
    jeff_policy(wsgi.registry).manager.revoke_everyone()
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
    manager = jeff_policy(wsgi.registry).manager
    manager.create(ALICE)
    with pytest.raises(TooManySessions) as caught:
        manager.create(ALICE)
    assert (caught.value.key, caught.value.max_sessions) == (ALICE, 1)

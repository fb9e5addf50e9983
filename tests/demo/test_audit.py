"""The demo's audit trail: every login and why each session ended."""

from __future__ import annotations

import hashlib
import logging

import pytest

from pyramid_jeff.events import EveryoneRevoked, SessionEnded
from pyramid_jeff_demo.audit import AuditTrail, audit_trail

from .pages import (
    ALICE,
    BOB,
    PHONE,
    Browser,
    DemoFactory,
    audit_entries,
    browsers,
    csrf_token,
    logged_in,
    login,
    session_cookie,
    this_session_id,
)

# --- the audit trail -------------------------------------------------------------------------


def test_audit_trail_shows_every_login_and_why_each_session_ended(make_demo: DemoFactory) -> None:
    browser = browsers(make_demo(**{"jeff.max_sessions": "2"}))
    alice = logged_in(browser(), ALICE)
    a1 = this_session_id(alice)
    laptop = logged_in(browser(), BOB)
    b1 = this_session_id(laptop)
    b2 = this_session_id(logged_in(laptop, BOB))  # a new login in the same browser
    phone = logged_in(browser(PHONE), BOB)
    b3 = this_session_id(phone)
    tablet = logged_in(browser(), BOB)  # a third session: the cap is 2
    b4 = this_session_id(tablet)
    phone.post("/logout", {"csrf_token": csrf_token(phone.get("/products"))})
    page = alice.get("/admin", {"email": BOB})
    alice.post(
        "/admin/revoke-session", {"email": BOB, "session_id": b4, "csrf_token": csrf_token(page)}
    )
    page = alice.get("/admin")
    assert audit_entries(page) == [  # newest first
        ("ended", BOB, b4, "revoked"),
        ("ended", BOB, b3, "logout"),
        ("ended", BOB, b2, "evicted"),
        ("created", BOB, b4, ""),
        ("created", BOB, b3, ""),
        ("ended", BOB, b1, "replaced"),
        ("created", BOB, b2, ""),
        ("created", BOB, b1, ""),
        ("created", ALICE, a1, ""),
    ]
    assert '<span class="badge reason-evicted">evicted</span>' in page.text
    # Nothing secret: no cookie value, nor any part of one but the public session id.
    key_digest, _, token = alice.cookies["jeff"].split(".")
    assert token not in page.text and key_digest not in page.text


def test_audit_log_names_the_key_by_a_hash_and_never_a_token(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyramid_jeff_demo.audit")
    client = browser()
    cookie = session_cookie(login(client, BOB)).split(";")[0].split("=", 1)[1]
    key_digest, session_id, token = cookie.split(".")
    client.post("/logout", {"csrf_token": csrf_token(client.get("/products"))})
    lines = [r.getMessage() for r in caplog.records if r.name == "pyramid_jeff_demo.audit"]
    who = hashlib.sha256(BOB.encode()).hexdigest()[:12]
    assert lines == [
        f"event=created key={who} session_id={session_id} reason=-",
        f"event=ended key={who} session_id={session_id} reason=logout",
    ]
    for secret in (BOB, token, key_digest):
        assert secret not in "\n".join(lines)


def test_audit_trail_keeps_the_newest_entries_first() -> None:
    trail = AuditTrail(size=3)
    for n in range(5):
        trail(SessionEnded(None, BOB, f"id{n}", "revoked"))
    trail(EveryoneRevoked(None, 0))
    assert [(e.event, e.session_id) for e in trail.entries()] == [
        ("everyone", ""),
        ("ended", "id4"),
        ("ended", "id3"),
    ]


def test_each_app_has_its_own_trail(make_demo: DemoFactory) -> None:
    first, second = make_demo(), make_demo()
    logged_in(browsers(first)(), BOB)
    assert len(audit_trail(first.registry).entries()) == 1
    assert audit_trail(second.registry).entries() == []

"""Session keys: what ``remember()`` refuses, it refuses with a clear error before any write,
and what it accepts comes back exactly; and what a hostile script or page could get hold of."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from pyramid.scripting import prepare
from pyramid.security import remember

from pyramid_jeff import MemoryStore, RedisStore, SessionManager
from pyramid_jeff.credentials import key_digest

from ..conftest import AppFactory, JeffTestApp
from ..helpers import CountingStore, memory_only, set_cookies
from .shapes import COOKIE, LATIN1, WELL_FORMED

# --- Session keys -------------------------------------------------------------------------

BAD_KEYS = [
    ("", "empty"),
    ("a" * 513, "at most 512 bytes"),
    ("\u00e9" * 257, "at most 512 bytes"),  # 514 bytes in 257 characters
    ("k" * 1_000_000, "at most 512 bytes"),
    ("\x00", "control"),
    ("alice\x00@example.com", "control"),
    ("alice@example.com\x00", "control"),
    ("line\nbreak", "control"),
    ("esc\x1b[31m", "control"),
    ("del\x7f", "control"),
    ("nel\x85", "control"),
    ("\ud800", "surrogate"),
    ("e\u0301", "NFC"),  # é, decomposed
    ("A\u030a", "NFC"),  # Å, decomposed
    ("\u212b", "NFC"),  # ANGSTROM SIGN, whose NFC form is U+00C5
    ("\u1100\u1161", "NFC"),  # Hangul jamo that compose
]


@pytest.fixture
def prepared(make_app: AppFactory) -> Iterator[tuple[JeffTestApp, Any, CountingStore]]:
    """A request as a view has it, on an app whose store counts every call."""
    app = make_app()
    counting = CountingStore(app.manager.store)
    app.manager.store = counting  # type: ignore[assignment]
    env = prepare(registry=app.app.registry)
    try:
        yield app, env["request"], counting
    finally:
        env["closer"]()


@pytest.mark.parametrize(("key", "reason"), BAD_KEYS, ids=[r for _, r in BAD_KEYS])
def test_bad_keys_get_a_clear_value_error_at_remember(
    prepared: tuple[JeffTestApp, Any, CountingStore], key: str, reason: str, store_url: str
) -> None:
    _, request, counting = prepared
    with pytest.raises(ValueError, match=reason):
        remember(request, key)
    assert counting.total() == 0, "a refused key reached the store"
    if store_url != "memory://":
        client = redis.Redis.from_url(store_url)
        assert client.dbsize() == 0, "a refused key left something in Redis"
        client.close()


@pytest.mark.parametrize("key", [b"alice", None, True, 1.5, ["a"], {"k": 1}])
@memory_only
def test_keys_of_the_wrong_type_are_a_type_error(
    prepared: tuple[JeffTestApp, Any, CountingStore], key: Any
) -> None:
    _, request, counting = prepared
    with pytest.raises(TypeError, match="str or an int"):
        remember(request, key)
    assert counting.total() == 0


def test_bad_keys_through_the_login_view_issue_no_cookie(memory_app: JeffTestApp) -> None:
    counting = CountingStore(memory_app.manager.store)
    memory_app.manager.store = counting  # type: ignore[assignment]
    for key, reason in BAD_KEYS:
        if "\ud800" in key:
            continue  # cannot travel in a form: UTF-8 has no surrogates
        memory_app.reset()
        with pytest.raises(ValueError, match=reason):
            memory_app.post("/login", {"key": key})
        assert not memory_app.cookies
    assert counting.total() == 0


def test_limits_are_exact(prepared: tuple[JeffTestApp, Any, CountingStore]) -> None:
    app, request, _ = prepared
    for key in ("a" * 512, "\u00e9" * 256, "\U0001f600" * 128, "x", "\u00c5", "0"):
        headers = remember(request, key)
        assert len(headers) == 1
        (session,) = app.manager.sessions(key)
        assert session.key == key
    remember(request, 42)
    assert [s.key for s in app.manager.sessions("42")] == ["42"]


@settings(max_examples=1000, deadline=None, database=None)
@given(key=st.one_of(st.text(max_size=40), st.integers(), st.text(LATIN1, max_size=600)))
def test_any_key_round_trips_or_is_refused_before_a_write(key: str | int) -> None:
    store = CountingStore(MemoryStore())
    manager = SessionManager(store)  # type: ignore[arg-type]
    try:
        session, credential = manager.create(key)
    except ValueError:
        assert store.total() == 0
        return
    text = str(key)
    assert session.key == text
    assert [s.key for s in manager.sessions(text)] == [text]
    assert manager.verify(credential) is not None
    assert credential.key_digest == key_digest(text)


def test_weird_but_valid_keys_round_trip_through_redis(redis_url: str, redis_client: Any) -> None:
    manager = SessionManager(RedisStore.from_url(redis_url))
    keys = ["{tag}", "}{", "a:b", "*", "\u00e9", "\U0001f600", "'; DROP", "\u2028", "z" * 512]
    for key in keys:
        _, credential = manager.create(key)
        assert [s.key for s in manager.sessions(key)] == [key]
        assert manager.verify(credential) is not None
    assert redis_client.dbsize() == len(keys)  # each key its own hash, nothing shared


def test_a_huge_user_agent_is_truncated(app: JeffTestApp) -> None:
    app.post(
        "/login",
        {"key": "alice@example.com"},
        headers={"User-Agent": "U" * 100_000},
        status=303,
    )
    (session,) = app.manager.sessions("alice@example.com")
    assert session.user_agent is not None and len(session.user_agent) <= 256


# --- What a hostile script or page could get hold of --------------------------------------


@memory_only
def test_the_default_cookie_is_out_of_reach_of_scripts_and_other_hosts(app: JeffTestApp) -> None:
    """ASVS 3.3.1, 3.3.3, 3.3.4, 3.3.5 with the default settings: ``__Host-`` prefix,
    Secure, HttpOnly, Path=/, no Domain, SameSite=Lax; a fixed, small size; and the token
    travels only in the ``Set-Cookie`` header, never in a body, a URL or a redirect."""
    response = app.login("alice@example.com", next="/whoami")
    (header,) = set_cookies(response)
    name_value, *attributes = [part.strip() for part in header.split(";")]
    name, value = name_value.split("=", 1)
    assert name == COOKIE and WELL_FORMED.fullmatch(value)
    assert len(name_value.encode()) <= 4096  # 101 bytes: far below what browsers keep
    flags = {a.split("=", 1)[0].lower(): a.partition("=")[2] for a in attributes}
    assert {"secure", "httponly"} <= set(flags)
    assert flags["path"] == "/" and "domain" not in flags
    assert flags["samesite"] == "Lax" and flags["max-age"] == "2592000"
    token = value.split(".")[2]
    assert token not in response.text and token not in response.headers["Location"]
    for page in ("/whoami", "/public", "/protected", "/sessions"):
        answer = app.get(page)
        assert token not in answer.text and not set_cookies(answer)
        assert all(token not in v for k, v in answer.headers.items() if k != "Set-Cookie")

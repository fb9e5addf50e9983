"""The store contract: every store keeps the same rules, driven through the protocol.

One suite over memory, Redis, memcached, SQLite, PostgreSQL and MariaDB (see
``any_store`` in tests/conftest.py), in four modules: what reads and touches give back
(here), logins and eviction (test_contract_logins.py), revocations and tombstones
(test_contract_revocations.py), and threads at once (test_contract_concurrency.py).
Liveness is the caller's clock (``now_ms``); sessions "dead" here are dead by that clock
while the backend still holds them, so the rules, not the backend's own expiry, are what
is checked.
"""

from __future__ import annotations

from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.session import pack_meta
from pyramid_jeff.stores import SessionStore

from .helpers import ALICE, BOB, DAY, HOUR, add, ids, now_ms, session


def test_a_session_reads_back_whole(any_store: SessionStore) -> None:
    t = now_ms()
    stored = session(
        "Zoë <zoe@example.com>",
        created=t,
        ip="2001:db8::1",
        user_agent="Mozilla/5.0 (X11; Linux) — naïve",
        packed_meta=pack_meta({"device": "laptop", "n": 3, "nested": {"a": [1, 2]}}),
    )
    assert add(any_store, stored) == []
    got = any_store.get(key_digest(stored.key), stored.id)
    assert got == stored
    assert got is not None
    assert got.token_digest == stored.token_digest
    assert got.meta == {"device": "laptop", "n": 3, "nested": {"a": [1, 2]}}
    assert any_store.list(key_digest(stored.key)) == [stored]


def test_unknown_sessions_and_keys_read_as_none(any_store: SessionStore) -> None:
    s = session(created=now_ms())
    add(any_store, s)
    assert any_store.get(key_digest(ALICE), new_session_id()) is None
    assert any_store.get(key_digest(BOB), s.id) is None
    assert any_store.list(key_digest(BOB)) == []


def test_touch_writes_only_past_the_interval(any_store: SessionStore) -> None:
    t = now_ms()
    s = session(created=t)
    add(any_store, s)
    digest = key_digest(ALICE)

    def seen() -> int:
        got = any_store.get(digest, s.id)
        assert got is not None
        return got.last_seen_ms

    assert any_store.touch(digest, s.id, t + 59_999, min_interval_ms=60_000)
    assert seen() == t
    assert any_store.touch(digest, s.id, t + 60_000, min_interval_ms=60_000)
    assert seen() == t + 60_000
    # An interval of 0 still needs a later time; an earlier one never goes back.
    assert any_store.touch(digest, s.id, t + 60_000, min_interval_ms=0)
    assert any_store.touch(digest, s.id, t + 1_000, min_interval_ms=0)
    assert seen() == t + 60_000
    assert any_store.touch(digest, s.id, t + 60_001, min_interval_ms=0)
    assert seen() == t + 60_001
    got = any_store.get(digest, s.id)
    assert got is not None and got.token_digest == s.token_digest  # the rest is kept


def test_touch_never_creates_nor_resurrects(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    ghost = new_session_id()
    assert not any_store.touch(digest, ghost, t + 1, min_interval_ms=0)
    assert any_store.get(digest, ghost) is None
    s = session(created=t)
    add(any_store, s)
    assert any_store.revoke(digest, s.id, now_ms=t, idle_timeout_ms=0)
    assert not any_store.touch(digest, s.id, t + 120_000, min_interval_ms=0)
    assert any_store.get(digest, s.id) is None
    assert any_store.list(digest) == []


def test_list_holds_the_dead_and_the_live(any_store: SessionStore) -> None:
    # Liveness is the caller's to decide (the manager filters by its clock).
    t = now_ms()
    old = session(created=t - 10 * 60_000, last_seen=t - 10 * 60_000, lifetime=HOUR)
    new = session(created=t)
    add(any_store, old, now=t)
    add(any_store, new, now=t, idle=60_000)
    assert ids(any_store) == {old.id, new.id}


def test_long_lifetimes_are_kept(any_store: SessionStore) -> None:
    # Memcached reads an expiry above 30 days as a point in time, not a duration.
    t = now_ms()
    s = session(created=t, lifetime=400 * DAY)
    add(any_store, s)
    assert any_store.get(key_digest(ALICE), s.id) == s
    assert any_store.touch(key_digest(ALICE), s.id, t + 60_000, min_interval_ms=60_000)
    assert any_store.get(key_digest(ALICE), s.id) == s.seen_at(t + 60_000)


def test_nul_characters_never_reach_the_store(any_store: SessionStore) -> None:
    # PostgreSQL text cannot hold NUL: the manager drops it from what the browser sent.
    from pyramid_jeff import SessionManager

    manager = SessionManager(any_store)
    _, credential = manager.create(ALICE, ip="192.0.2.1\x00", user_agent="Mozilla\x00/5.0")
    verified = manager.verify(credential)
    assert verified is not None
    assert (verified.ip, verified.user_agent) == ("192.0.2.1", "Mozilla/5.0")

"""The store contract: every store keeps the same rules, driven through the protocol.

One suite over memory, Redis, memcached, SQLite, PostgreSQL and MariaDB (see
``any_store`` in conftest.py): eviction order, the touch interval, token- and key-checked
revocation, live counts, what a login replaces. Liveness is the caller's clock
(``now_ms``); sessions "dead" here are dead by that clock while the backend still holds
them, so the rules, not the backend's own expiry, are what is checked.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import pytest

from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.errors import TooManySessions
from pyramid_jeff.session import TOMBSTONE_MS, Session, pack_meta
from pyramid_jeff.stores import SessionStore

from .helpers import stored_session

ALICE = "alice@example.com"
BOB = "bob@example.com"
HOUR = 3_600_000
DAY = 24 * HOUR


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def session(
    key: str = ALICE,
    *,
    created: int,
    lifetime: int = HOUR,
    last_seen: int | None = None,
    session_id: str | None = None,
    **fields: Any,
) -> Session:
    return stored_session(
        key,
        created=created,
        lifetime=lifetime,
        last_seen=last_seen,
        session_id=session_id,
        **fields,
    )


def add(
    store: SessionStore,
    s: Session,
    *,
    max_sessions: int = 32,
    now: int | None = None,
    idle: int = 0,
    **kw: Any,
) -> list[str]:
    return store.create(
        key_digest(s.key),
        s,
        max_sessions=max_sessions,
        now_ms=s.created_ms if now is None else now,
        idle_timeout_ms=idle,
        **kw,
    )


def ids(store: SessionStore, key: str = ALICE) -> set[str]:
    """The key's stored sessions, but tombstones."""
    return {s.id for s in store.list(key_digest(key)) if s.key == key and s.ended is None}


def tombstones(store: SessionStore, key: str = ALICE) -> dict[str, str | None]:
    return {s.id: s.ended for s in store.list(key_digest(key)) if s.key == key and s.ended}


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


def test_a_login_replaces_the_carried_session_only_with_its_token(
    any_store: SessionStore,
) -> None:
    t = now_ms()
    carried = session(created=t)
    add(any_store, carried)
    forged = session(created=t + 1)
    add(any_store, forged, replace_id=carried.id, replace_token_digest=secrets.token_bytes(32))
    assert ids(any_store) == {carried.id, forged.id}  # a wrong digest replaces nothing
    fresh = session(created=t + 2)
    add(any_store, fresh, replace_id=carried.id, replace_token_digest=carried.token_digest)
    assert ids(any_store) == {forged.id, fresh.id}
    # Replacing what is not there is no error.
    another = session(created=t + 3)
    add(any_store, another, replace_id=new_session_id(), replace_token_digest=b"x" * 32)
    assert ids(any_store) == {forged.id, fresh.id, another.id}


def test_the_oldest_is_evicted_by_creation_time_then_id(any_store: SessionStore) -> None:
    t = now_ms()
    first = session(created=t)
    tied = sorted([new_session_id(), new_session_id()])
    second = session(created=t + 1, session_id=tied[1])
    third = session(created=t + 1, session_id=tied[0])
    for s in (first, second, third):
        assert add(any_store, s, max_sessions=3, now=t + 2) == []
    fourth = session(created=t + 2)
    assert add(any_store, fourth, max_sessions=3) == [first.id]
    assert ids(any_store) == {second.id, third.id, fourth.id}
    fifth = session(created=t + 3)
    assert add(any_store, fifth, max_sessions=3) == [third.id]
    assert ids(any_store) == {second.id, fourth.id, fifth.id}  # the smaller id went first


def test_dead_sessions_make_room_before_live_ones(any_store: SessionStore) -> None:
    t = now_ms()
    expired = session(created=t, lifetime=5_000)
    idle = session(created=t + 1, lifetime=HOUR)
    live = session(created=t + 2, last_seen=t + 20_000)
    for s in (expired, idle, live):
        add(any_store, s, now=t + 2, max_sessions=3)
    # 30 s later, by the caller's clock, with a 20 s idle timeout: only `live` is live.
    newcomer = session(created=t + 30_000)
    assert add(any_store, newcomer, max_sessions=3, idle=20_000) == []
    stored = any_store.list(key_digest(ALICE))
    assert {s.id for s in stored if s.is_live(t + 30_000, 20_000)} == {live.id, newcomer.id}
    assert len(stored) <= 3


def test_a_lowered_cap_evicts_as_many_as_needed(any_store: SessionStore) -> None:
    t = now_ms()
    made = [session(created=t + i) for i in range(5)]
    for s in made:
        add(any_store, s, max_sessions=10)
    newest = session(created=t + 10)
    assert sorted(add(any_store, newest, max_sessions=2)) == sorted(s.id for s in made[:4])
    assert ids(any_store) == {made[4].id, newest.id}


def test_sessions_that_end_this_request_do_not_count(any_store: SessionStore) -> None:
    # The manager raises max_sessions by the sessions it ends right after the login.
    t = now_ms()
    a, b = session(created=t), session(created=t + 1)
    add(any_store, a, max_sessions=2)
    add(any_store, b, max_sessions=2)
    c = session(created=t + 2)
    assert add(any_store, c, max_sessions=3) == []
    assert ids(any_store) == {a.id, b.id, c.id}


def test_revoke_tells_whether_a_live_session_ended(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    live, dying = session(created=t), session(created=t, lifetime=5_000)
    add(any_store, live)
    add(any_store, dying)
    assert any_store.revoke(digest, live.id, now_ms=t + 10_000, idle_timeout_ms=0)
    assert not any_store.revoke(digest, live.id, now_ms=t + 10_000, idle_timeout_ms=0)
    # A dead one is removed all the same, but did not count as live.
    assert not any_store.revoke(digest, dying.id, now_ms=t + 10_000, idle_timeout_ms=0)
    assert any_store.list(digest) == []
    assert not any_store.revoke(digest, new_session_id(), now_ms=t, idle_timeout_ms=0)


@pytest.mark.parametrize("wrong", [b"", b"\x00" * 32, "random"])
def test_revoke_with_another_token_digest_ends_nothing(
    any_store: SessionStore, wrong: bytes | str
) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    s = session(created=t)
    add(any_store, s)
    other = secrets.token_bytes(32) if wrong == "random" else wrong
    assert isinstance(other, bytes)
    assert not any_store.revoke(digest, s.id, now_ms=t, idle_timeout_ms=0, token_digest=other)
    assert ids(any_store) == {s.id}
    assert any_store.revoke(digest, s.id, now_ms=t, idle_timeout_ms=0, token_digest=s.token_digest)
    assert ids(any_store) == set()


def test_revoke_all_ends_all_but_keep_and_counts_the_live(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    live = [session(created=t + i) for i in range(3)]
    dead = session(created=t, lifetime=5_000)
    for s in (*live, dead):
        add(any_store, s)
    bob = session(BOB, created=t)
    add(any_store, bob)
    ended = any_store.revoke_all(
        digest, keep=live[1].id, now_ms=t + 10_000, idle_timeout_ms=0, key=ALICE
    )
    assert sorted(ended) == sorted([live[0].id, live[2].id])
    assert ids(any_store) == {live[1].id}
    assert ids(any_store, BOB) == {bob.id}
    ended = any_store.revoke_all(digest, keep=None, now_ms=t, idle_timeout_ms=0, key=ALICE)
    assert ended == [live[1].id]
    assert ids(any_store) == set()
    assert any_store.revoke_all(digest, keep=None, now_ms=t, idle_timeout_ms=0) == []


def test_list_holds_the_dead_and_the_live(any_store: SessionStore) -> None:
    # Liveness is the caller's to decide (the manager filters by its clock).
    t = now_ms()
    old = session(created=t - 10 * 60_000, last_seen=t - 10 * 60_000, lifetime=HOUR)
    new = session(created=t)
    add(any_store, old, now=t)
    add(any_store, new, now=t, idle=60_000)
    assert ids(any_store) == {old.id, new.id}


def test_colliding_keys_never_end_each_others_sessions(any_store: SessionStore) -> None:
    # Two keys forced into one digest: each key's cap, eviction and revocations are its own.
    t = now_ms()
    shared = key_digest(ALICE)
    alice = session(created=t)
    mallory = [session("mallory@example.com", created=t + i) for i in range(1, 3)]
    any_store.create(shared, alice, max_sessions=1, now_ms=t, idle_timeout_ms=0)
    for s in mallory:
        any_store.create(shared, s, max_sessions=1, now_ms=s.created_ms, idle_timeout_ms=0)
    stored = {s.id: s.key for s in any_store.list(shared) if s.ended is None}
    assert stored == {alice.id: ALICE, mallory[1].id: "mallory@example.com"}
    assert not any_store.revoke(shared, alice.id, now_ms=t, idle_timeout_ms=0, key=mallory[1].key)
    ended = any_store.revoke_all(shared, keep=None, now_ms=t, idle_timeout_ms=0, key=ALICE)
    assert ended == [alice.id]
    assert {s.id for s in any_store.list(shared) if s.ended is None} == {mallory[1].id}


def test_long_lifetimes_are_kept(any_store: SessionStore) -> None:
    # Memcached reads an expiry above 30 days as a point in time, not a duration.
    t = now_ms()
    s = session(created=t, lifetime=400 * DAY)
    add(any_store, s)
    assert any_store.get(key_digest(ALICE), s.id) == s
    assert any_store.touch(key_digest(ALICE), s.id, t + 60_000, min_interval_ms=60_000)
    assert any_store.get(key_digest(ALICE), s.id) == s.seen_at(t + 60_000)


def test_concurrent_logins_at_the_cap_lose_nothing(any_store: SessionStore) -> None:
    cap, threads, per_thread = 6, 4, 5
    made: list[Session] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def log_in() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                s = session(created=now_ms())
                add(any_store, s, max_sessions=cap)
                with lock:
                    made.append(s)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=log_in) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    assert len(made) == threads * per_thread
    survivors = ids(any_store)
    assert len(survivors) == cap
    assert survivors <= {s.id for s in made}
    # A login evicts only older ones, so the newest of all survives.
    last = max(made, key=lambda s: (s.created_ms, s.id))
    assert last.id in survivors


def test_concurrent_touches_never_resurrect_a_revoked_session(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    sessions = [session(created=t) for _ in range(20)]
    for s in sessions:
        add(any_store, s, max_sessions=100)
    stop = threading.Event()
    errors: list[BaseException] = []

    def touch() -> None:
        seen = t
        try:
            while not stop.is_set():
                seen += 1
                for s in sessions:
                    any_store.touch(digest, s.id, seen, min_interval_ms=0)
        except BaseException as exc:
            errors.append(exc)

    toucher = threading.Thread(target=touch)
    toucher.start()
    try:
        for s in sessions:
            assert any_store.revoke(digest, s.id, now_ms=t, idle_timeout_ms=0)
    finally:
        stop.set()
        toucher.join(30)
    assert not errors
    assert any_store.list(digest) == []
    assert all(any_store.get(digest, s.id) is None for s in sessions)


def test_nul_characters_never_reach_the_store(any_store: SessionStore) -> None:
    # PostgreSQL text cannot hold NUL: the manager drops it from what the browser sent.
    from pyramid_jeff import SessionManager

    manager = SessionManager(any_store)
    _, credential = manager.create(ALICE, ip="192.0.2.1\x00", user_agent="Mozilla\x00/5.0")
    verified = manager.verify(credential)
    assert verified is not None
    assert (verified.ip, verified.user_agent) == ("192.0.2.1", "Mozilla/5.0")


def test_create_names_the_live_sessions_it_ended(any_store: SessionStore) -> None:
    t = now_ms()
    carried, other = session(created=t), session(created=t + 1)
    add(any_store, carried, max_sessions=2)
    add(any_store, other, max_sessions=2)
    fresh = session(created=t + 2)
    ended = add(
        any_store,
        fresh,
        max_sessions=2,
        replace_id=carried.id,
        replace_token_digest=carried.token_digest,
    )
    assert ended == [carried.id]  # the replaced one made room: nothing evicted
    assert ids(any_store) == {other.id, fresh.id}
    assert tombstones(any_store) == {}  # a replaced session leaves no tombstone
    dead = session(created=t, lifetime=5, session_id=new_session_id())
    add(any_store, dead, max_sessions=3, now=t + 3)
    newer = session(created=t + 10)
    # A dead replaced session ended nothing live.
    assert add(any_store, newer, replace_id=dead.id, replace_token_digest=dead.token_digest) == []


def test_an_evicted_session_leaves_a_tombstone(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    old, new = session(created=t, lifetime=30 * DAY), session(created=t + 1)
    add(any_store, old, max_sessions=1)
    assert add(any_store, new, max_sessions=1) == [old.id]
    stone = any_store.get(digest, old.id)
    assert stone is not None and stone.ended == "evicted"
    assert stone.token_digest == old.token_digest  # only its own browser is told
    assert stone.expires_ms == t + 1 + TOMBSTONE_MS  # kept for a while, not 30 days
    assert not stone.is_live(t + 1, 0)
    assert not any_store.touch(digest, old.id, t + 120_000, min_interval_ms=0)
    assert any_store.get(digest, old.id) == stone  # a touch does not revive it
    assert not any_store.revoke(digest, old.id, now_ms=t + 2, idle_timeout_ms=0)
    # The tombstone is dead: it makes room before any live session is evicted.
    newest = session(created=t + 3)
    assert add(any_store, newest, max_sessions=2) == []
    assert ids(any_store) == {new.id, newest.id}


def test_an_operator_revocation_leaves_a_tombstone_a_logout_none(
    any_store: SessionStore,
) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    revoked, logged_out = session(created=t), session(created=t + 1)
    add(any_store, revoked)
    add(any_store, logged_out)
    assert any_store.revoke(digest, revoked.id, now_ms=t, idle_timeout_ms=0, tombstone=True)
    stone = any_store.get(digest, revoked.id)
    assert stone is not None and stone.ended == "revoked"
    assert not stone.is_live(t, 0)
    assert not any_store.touch(digest, revoked.id, t + 120_000, min_interval_ms=0)
    assert not any_store.revoke(digest, revoked.id, now_ms=t, idle_timeout_ms=0, tombstone=True)
    assert any_store.revoke(
        digest, logged_out.id, now_ms=t, idle_timeout_ms=0, token_digest=logged_out.token_digest
    )
    assert any_store.get(digest, logged_out.id) is None
    assert tombstones(any_store) == {revoked.id: "revoked"}
    # revoke_all tombstones what it ends, and counts no tombstone as live.
    others = [session(created=t + 2 + i) for i in range(2)]
    for s in others:
        add(any_store, s)
    ended = any_store.revoke_all(digest, keep=None, now_ms=t + 5, idle_timeout_ms=0, key=ALICE)
    assert sorted(ended) == sorted(s.id for s in others)
    assert tombstones(any_store) == {revoked.id: "revoked", **{s.id: "revoked" for s in others}}
    assert ids(any_store) == set()


def test_reject_refuses_a_login_past_the_cap_and_writes_nothing(
    any_store: SessionStore,
) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    first, second = session(created=t), session(created=t + 1)
    add(any_store, first, max_sessions=2, evict=False)
    add(any_store, second, max_sessions=2, evict=False)
    refused = session(created=t + 2)
    with pytest.raises(TooManySessions):
        add(any_store, refused, max_sessions=2, evict=False)
    assert any_store.get(digest, refused.id) is None
    assert ids(any_store) == {first.id, second.id}
    # The session this browser carried makes room, as does a dead one.
    rotated = session(created=t + 3)
    ended = add(
        any_store,
        rotated,
        max_sessions=2,
        evict=False,
        replace_id=first.id,
        replace_token_digest=first.token_digest,
    )
    assert ended == [first.id]
    assert any_store.revoke(digest, second.id, now_ms=t + 4, idle_timeout_ms=0, tombstone=True)
    after_revoke = session(created=t + 5)
    assert add(any_store, after_revoke, max_sessions=2, evict=False) == []
    assert ids(any_store) == {rotated.id, after_revoke.id}


def test_revoke_everyone_ends_every_key_without_a_scan(any_store: SessionStore) -> None:
    t = now_ms()
    alice, bob = session(created=t), session(BOB, created=t + 1)
    add(any_store, alice)
    add(any_store, bob)
    any_store.revoke_everyone(now_ms=t + 2)
    for s in (alice, bob):
        seen = any_store.get(key_digest(s.key), s.id)
        assert seen is None or (seen.ended == "revoked" and not seen.is_live(t + 2, 0))
        assert not any(x.is_live(t + 2, 0) for x in any_store.list(key_digest(s.key)))
    assert not any_store.touch(key_digest(ALICE), alice.id, t + 120_000, min_interval_ms=0)
    # Logins after it work as usual; what it ended is not counted again.
    later = session(created=t + 3)
    assert add(any_store, later, max_sessions=1) == []
    assert any_store.get(key_digest(ALICE), later.id) == later
    assert any_store.revoke_all(key_digest(BOB), keep=None, now_ms=t + 4, idle_timeout_ms=0) == []
    # A second call, with an earlier clock, never brings anything back.
    any_store.revoke_everyone(now_ms=t)
    assert any_store.get(key_digest(ALICE), later.id) == later
    bob_seen = any_store.get(key_digest(BOB), bob.id)
    assert bob_seen is None or not bob_seen.is_live(t + 4, 0)


def test_after_revoke_everyone_a_revocation_keeps_telling_revoked(any_store: SessionStore) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    first, second, third = (session(created=t + i, lifetime=30 * DAY) for i in range(3))
    for s in (first, second, third):
        add(any_store, s)
    any_store.revoke_everyone(now_ms=t + 5)
    # What the cutoff ended stays a "revoked" tombstone: an operator's revoke or
    # revoke_all (which find nothing live) must not delete it.
    assert not any_store.revoke(digest, first.id, now_ms=t + 6, idle_timeout_ms=0, tombstone=True)
    assert any_store.revoke_all(digest, keep=None, now_ms=t + 6, idle_timeout_ms=0) == []
    for s in (first, second, third):
        seen = any_store.get(digest, s.id)
        assert seen is not None and seen.ended == "revoked", s.id
        # Kept a week after the cutoff at most, as every tombstone.
        assert seen.expires_ms <= t + 5 + TOMBSTONE_MS

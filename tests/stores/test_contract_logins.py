"""The store contract, logins: what a login replaces, whom it evicts and in what order, what
it names as ended, and refusal at the cap (the suite: test_contract_reads.py)."""

from __future__ import annotations

import secrets

import pytest

from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.errors import TooManySessions
from pyramid_jeff.stores import SessionStore

from .helpers import ALICE, HOUR, add, ids, logged_in, now_ms, session, tombstones


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
    a, b = logged_in(any_store, 2, created=t, max_sessions=2)
    c = session(created=t + 2)
    assert add(any_store, c, max_sessions=3) == []
    assert ids(any_store) == {a.id, b.id, c.id}


def test_create_names_the_live_sessions_it_ended(any_store: SessionStore) -> None:
    t = now_ms()
    carried, other = logged_in(any_store, 2, created=t, max_sessions=2)
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


def test_reject_refuses_a_login_past_the_cap_and_writes_nothing(
    any_store: SessionStore,
) -> None:
    t = now_ms()
    digest = key_digest(ALICE)
    first, second = logged_in(any_store, 2, created=t, max_sessions=2, evict=False)
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

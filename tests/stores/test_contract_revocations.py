"""The store contract, revocations: logout and operator revocation, revoke_all, the
tombstones they and evictions leave, and revoke_everyone (the suite:
test_contract_reads.py)."""

from __future__ import annotations

import secrets

import pytest

from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.session import TOMBSTONE_MS
from pyramid_jeff.stores import SessionStore

from .helpers import ALICE, BOB, DAY, add, ids, now_ms, session, tombstones


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

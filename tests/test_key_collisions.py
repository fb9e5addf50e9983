"""Stores act on the sessions of the key asked for, even when two keys' digests collide.

A 128-bit key digest makes a collision practically impossible, but the record carries
its key, and comparing it is cheap: two keys forced into one hash (``key_digest``
patched) must not share eviction or revocation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pyramid_jeff import MemoryStore, RedisStore, SessionManager, credentials, manager
from pyramid_jeff.credentials import Credential

from .helpers import Clock

ALICE = "alice@example.com"
MALLORY = "mallory@example.com"


@pytest.fixture
def collide(monkeypatch: pytest.MonkeyPatch) -> str:
    """ALICE and MALLORY share one digest (so one Redis hash) from now on."""
    real = credentials.key_digest

    def colliding(key: str) -> str:
        return real(ALICE) if key in (ALICE, MALLORY) else real(key)

    monkeypatch.setattr(credentials, "key_digest", colliding)
    monkeypatch.setattr(manager, "key_digest", colliding)
    return real(ALICE)


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    """Each test on both stores (the Redis one is checked by its Lua scripts)."""
    store: Any = MemoryStore() if store_url == "memory://" else RedisStore.from_url(store_url)
    yield store
    store.close()


def test_the_collision_is_real(collide: str, redis_url: str, redis_client: Any) -> None:
    store = RedisStore.from_url(redis_url)
    jeff = SessionManager(store)
    a = jeff.create(ALICE)[0]
    m = jeff.create(MALLORY)[0]
    fields = redis_client.hkeys(store.hash_key(collide))
    assert sorted(fields) == sorted([a.id.encode(), m.id.encode()])


def test_eviction_never_ends_the_other_keys_sessions(collide: str, store: Any) -> None:
    clock = Clock()
    jeff = SessionManager(store, max_sessions=2, clock=clock)
    alice = []
    for _ in range(2):
        alice.append(jeff.create(ALICE))
        clock.advance(1)
    mallory = []
    for _ in range(3):
        mallory.append(jeff.create(MALLORY))
        clock.advance(1)
    for session, credential in alice:
        assert jeff.verify(credential) == session
    assert jeff.verify(mallory[0][1]) is None  # mallory's oldest: evicted
    assert {s.id for s in jeff.sessions(MALLORY)} == {s.id for s, _ in mallory[1:]}
    assert {s.id for s in jeff.sessions(ALICE)} == {s.id for s, _ in alice}


def test_revoke_all_of_one_key_keeps_the_others(collide: str, store: Any) -> None:
    clock = Clock()
    jeff = SessionManager(store, clock=clock)
    alice = [jeff.create(ALICE) for _ in range(2)]
    mallory = [jeff.create(MALLORY) for _ in range(3)]
    ended = store.revoke_all(collide, keep=None, now_ms=clock(), idle_timeout_ms=0, key=MALLORY)
    assert sorted(ended) == sorted(s.id for s, _ in mallory)
    for session, credential in alice:
        assert jeff.verify(credential) == session
    assert all(jeff.verify(credential) is None for _, credential in mallory)
    keep = alice[0][0].id
    ended = store.revoke_all(collide, keep=keep, now_ms=clock(), idle_timeout_ms=0, key=ALICE)
    assert ended == [alice[1][0].id]
    assert [s.id for s in jeff.sessions(ALICE)] == [keep]


def test_revoke_by_id_checks_the_key(collide: str, store: Any) -> None:
    clock = Clock()
    jeff = SessionManager(store, clock=clock)
    session, credential = jeff.create(ALICE)
    revoked = store.revoke(collide, session.id, now_ms=clock(), idle_timeout_ms=0, key=MALLORY)
    assert revoked is False
    assert jeff.verify(credential) == session
    assert store.revoke(collide, session.id, now_ms=clock(), idle_timeout_ms=0, key=ALICE)
    assert jeff.verify(credential) is None


def test_a_colliding_cookie_proves_nothing_of_the_other_key(collide: str, store: Any) -> None:
    jeff = SessionManager(store)
    session, _ = jeff.create(ALICE)
    _, mallory = jeff.create(MALLORY)
    forged = Credential(mallory.key_digest, session.id, mallory.token)
    assert jeff.verify(forged) is None

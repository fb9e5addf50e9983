"""What memcached may lose (an index, a marker, the revoke_everyone cutoff, by eviction or
garbage) fails closed; tombstones last a week and never change. (The memcached store's
other tests: see test_memcached_layout.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from pyramid_jeff import SessionManager
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.session import TOMBSTONE_MS, Session
from pyramid_jeff.stores.memcached import EPOCH_BYTES, MemcachedStore

from ...conftest import need
from ...helpers import Clock
from ...memcached_server import MemcachedServer
from .helpers import metadata_of, raw_client, raw_get


def three_logins_and_a_lost_index(
    store: MemcachedStore, memcached: MemcachedServer
) -> tuple[SessionManager, str, list[tuple[Session, Credential]], Client]:
    """Bob's three logins, then his index deleted as an eviction would: the manager, his
    key's digest, the logins, and the client that deleted it (for the caller to close)."""
    manager = SessionManager(store)
    digest = key_digest("bob@example.com")
    pairs = [manager.create("bob@example.com") for _ in range(3)]
    client = raw_client(memcached)
    client.delete(store.index_key(digest), noreply=False)  # as an eviction would
    return manager, digest, pairs, client


def test_a_lost_index_or_marker_ends_the_keys_sessions(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    """Memcached evicting the index must not leave sessions that revoke_all misses."""
    manager, digest, pairs, client = three_logins_and_a_lost_index(store, memcached)
    assert manager.verify(pairs[0][1]) is not None  # not listable, but still working...
    assert manager.revoke_all("bob@example.com", keep=pairs[2][0].id) == 0
    assert [manager.verify(c) for _, c in pairs[:2]] == [None, None]  # ...until revoke_all
    assert manager.verify(pairs[2][1]) is not None  # keep survives the rebuild
    assert [s.id for s in manager.sessions("bob@example.com")] == [pairs[2][0].id]

    client.delete(store.index_key(digest), noreply=False)
    assert manager.sessions("bob@example.com") == []  # and listing tells the truth
    assert manager.verify(pairs[2][1]) is None

    _, other = manager.create("bob@example.com")
    client.delete(store.marker_key(digest), noreply=False)  # an evicted marker: logged out
    assert manager.verify(other) is None
    client.close()


def test_revoke_all_after_a_lost_index_ends_everything_without_keep(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    manager, _, pairs, client = three_logins_and_a_lost_index(store, memcached)
    assert manager.revoke_all("bob@example.com") == 0  # it cannot count what it lost...
    assert [manager.verify(c) for _, c in pairs] == [None, None, None]  # ...but ends it all
    assert manager.sessions("bob@example.com") == []
    client.close()


@pytest.mark.parametrize("loss", ["evicted", "unreadable"])
def test_a_lost_cutoff_fails_closed(
    store: MemcachedStore, memcached: MemcachedServer, loss: str
) -> None:
    """Memcached losing the cutoff must never bring back what it ended."""
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    digest = key_digest("bob@example.com")
    revoked, revoked_credential = manager.create("bob@example.com")
    clock.advance(1)
    store.revoke_everyone(now_ms=clock.now)
    clock.advance(1)
    working, working_credential = manager.create("bob@example.com")
    client = raw_client(memcached)
    epoch = client.get(store.cutoff_key())[:EPOCH_BYTES]
    if loss == "evicted":
        client.delete(store.cutoff_key(), noreply=False)
    else:
        client.set(store.cutoff_key(), b"garbage", noreply=False)
    # No session of the server counts, not even one made after the cutoff.
    assert store.get(digest, revoked.id) is None
    assert store.get(digest, working.id) is None
    clock.advance(61)
    assert not store.touch(digest, working.id, clock.now)
    assert not store.revoke(digest, working.id, now_ms=clock.now, idle_timeout_ms=0)
    assert store.revoke_all(digest, keep=None, now_ms=clock.now, idle_timeout_ms=0) == []
    assert manager.sessions("bob@example.com") == []
    # The next login writes a cutoff of a new epoch: it works, the others stay dead.
    fresh, fresh_credential = manager.create("bob@example.com")
    assert client.get(store.cutoff_key())[:EPOCH_BYTES] != epoch
    assert manager.verify(fresh_credential) == fresh
    assert manager.verify(revoked_credential) is None
    assert manager.verify(working_credential) is None
    assert [s.id for s in manager.sessions("bob@example.com")] == [fresh.id]
    client.close()


def test_memcached_evicting_the_cutoff_fails_closed(tmp_path: Path) -> None:
    """A real eviction: a small memcached flooded with items the cutoff's size."""
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    server = MemcachedServer.start(tmp_path, extra_args=("-m", "2", "-o", "slab_automove=0"))
    try:
        store = MemcachedStore.from_url(server.url)
        manager = SessionManager(store)
        session, credential = manager.create("bob@example.com")
        store.revoke_everyone(now_ms=session.created_ms - 1)  # it stays live
        assert manager.verify(credential) == session
        client = raw_client(server)
        wanted = [store.item_key(credential.key_digest, session.id)]
        wanted.append(store.marker_key(credential.key_digest))
        flooded = 0
        while flooded < 500_000:
            for _ in range(1000):
                client.set(f"flood{flooded:09d}", b"x" * 10, noreply=True)
                flooded += 1
            client.get_many(wanted)  # the session stays in use: only the cutoff is not read
            # The dump may miss an item being moved: a get (which bumps it) confirms.
            metadata = server.items_metadata()
            if store.cutoff_key() not in metadata and client.get(store.cutoff_key()) is None:
                break
        assert client.get(store.cutoff_key()) is None, "memcached evicted no cutoff"
        assert int(server.stats()["evictions"]) > 0
        assert len(client.get_many(wanted)) == 2  # the session itself is still stored...
        assert manager.verify(credential) is None  # ...but no longer counts
        assert store.get(credential.key_digest, session.id) is None
        fresh, fresh_credential = manager.create("bob@example.com")
        assert manager.verify(fresh_credential) == fresh
        assert manager.verify(credential) is None
        client.close()
        store.close()
    finally:
        server.stop()


def test_tombstones_last_a_week_stay_listed_and_never_change(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    clock = Clock(start_ms=time.time_ns() // 1_000_000)
    manager = SessionManager(store, max_sessions=1, max_age=30 * 24 * 3600, clock=clock)
    digest = key_digest("bob@example.com")
    evicted, _ = manager.create("bob@example.com")
    clock.advance(1)
    revoked, _ = manager.create("bob@example.com")  # evicts the first
    assert manager.revoke("bob@example.com", revoked.id)
    for stone in (evicted, revoked):
        name = store.item_key(digest, stone.id)
        metadata = metadata_of(memcached, name)
        # Kept a week (memcached's clock may differ a little), not the session's 30 days.
        assert abs(int(metadata["exp"]) - (clock.now + TOMBSTONE_MS) / 1000) < 120
        assert not store.touch(digest, stone.id, clock.now + 120_000)
        assert metadata_of(memcached, name)["cas"] == metadata["cas"]  # not even rewritten
    index = raw_get(memcached, store.index_key(digest))
    assert evicted.id.encode() in index and revoked.id.encode() in index  # still listed
    assert {s.id: s.ended for s in store.list(digest)} == {
        evicted.id: "evicted",
        revoked.id: "revoked",
    }

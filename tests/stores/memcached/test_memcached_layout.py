"""The memcached store against real memcached processes: the items each key keeps and the
round trips of each operation, what a stored value holds (no token), lifetimes past 30
days.

The memcached store's other tests: threads at once (test_memcached_concurrency.py), items
memcached loses (test_memcached_losses.py), several servers (test_memcached_servers.py),
outages, budgets and URLs (test_memcached_outages.py). The rules every store shares are in
tests/stores/test_contract_*.py.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

import pytest

from pyramid_jeff import SessionManager, TooManySessions
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.session import Session
from pyramid_jeff.stores.memcached import MemcachedStore

from ...helpers import Clock
from ...memcached_server import MemcachedServer
from ..helpers import BOB
from .helpers import RoundTrips, raw_client, raw_values, session_at


@dataclass
class Bob:
    """Bob's logins (three at most) by a clock of the test's own, on a store whose round
    trips are counted: what test_layout_and_round_trips_per_operation goes through."""

    store: MemcachedStore
    round_trips: RoundTrips
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.manager = SessionManager(self.store, max_sessions=3, clock=self.clock)
        self.digest = key_digest(BOB)


def test_layout_and_round_trips_per_operation(
    store: MemcachedStore, memcached: MemcachedServer, round_trips: RoundTrips
) -> None:
    bob = Bob(store, round_trips)
    first, credential = logins_and_reads(bob, memcached)
    live = eviction_and_listing(bob, first, credential)
    revocations(bob, live)


def logins_and_reads(bob: Bob, memcached: MemcachedServer) -> tuple[Session, Credential]:
    """The first logins, the items they write, the reads and the refresh."""
    store, round_trips, manager, digest = bob.store, bob.round_trips, bob.manager, bob.digest
    first, credential = manager.create("bob@example.com")
    # The cutoff (a new server has none), the item, the index, the marker.
    assert round_trips.take() == [b"gets", b"add", b"add", b"add", b"add"]
    assert set(memcached.items_metadata()) == {
        store.cutoff_key(),
        store.item_key(digest, first.id),
        store.index_key(digest),
        store.marker_key(digest),
    }
    bob.clock.advance(1)
    manager.create("bob@example.com")
    assert round_trips.take() == [b"gets", b"add", b"cas"]  # the marker needs no write

    for _ in range(10):
        assert manager.verify(credential) == first
    assert round_trips.take() == [b"get"] * 10  # one read each, no write

    bob.clock.advance(61)
    assert manager.verify(credential) is not None
    assert round_trips.take() == [b"get", b"gets", b"cas"]  # read, then the refresh
    return first, credential


def eviction_and_listing(bob: Bob, first: Session, credential: Credential) -> list[Session]:
    """A login at the cap, an unknown logout, a listing and a revoke_all; the listed."""
    store, round_trips, manager, digest = bob.store, bob.round_trips, bob.manager, bob.digest
    manager.create("bob@example.com")  # the third: still under the cap
    round_trips.take()
    ended = store.create(
        digest,
        session_at(bob.clock.now, "bob@example.com"),
        max_sessions=3,
        now_ms=bob.clock.now,
        idle_timeout_ms=0,
    )
    assert ended == [first.id]  # at the cap: read the items, tombstone the oldest
    assert round_trips.take() == [b"gets", b"gets", b"cas", b"add", b"cas"]
    assert manager.check(credential) == (None, "evicted")
    assert round_trips.take() == [b"get"]

    assert manager.end(Credential.mint("bob@example.com")) is False  # unknown id: one read
    assert round_trips.take() == [b"gets"]
    live = manager.sessions("bob@example.com")
    assert round_trips.take() == [b"gets", b"get"]
    assert len(live) == 3
    ended = store.revoke_all(digest, keep=live[0].id, now_ms=bob.clock.now, idle_timeout_ms=0)
    assert sorted(ended) == sorted(s.id for s in live[1:])
    # The ended stay listed as tombstones: no index write.
    assert round_trips.take() == [b"gets", b"gets", b"cas", b"cas"]
    assert [s.id for s in manager.sessions("bob@example.com")] == [live[0].id]
    round_trips.take()
    return live


def revocations(bob: Bob, live: list[Session]) -> None:
    """An operator's revocation, a login that drops the tombstones, a logout that empties
    the key, and revoke_everyone."""
    store, round_trips, manager, digest = bob.store, bob.round_trips, bob.manager, bob.digest
    now = bob.clock.now
    assert store.revoke(digest, live[0].id, now_ms=now, idle_timeout_ms=0, tombstone=True)
    assert round_trips.take() == [b"gets", b"cas"]  # a tombstone in place, still listed
    assert {s.id: s.ended for s in store.list(digest)}[live[0].id] == "revoked"
    kept, kept_credential = manager.create("bob@example.com")  # at the cap: drops them
    assert {s.id: s.ended for s in store.list(digest)} == {kept.id: None}
    round_trips.take()
    assert manager.end(kept_credential) is True
    assert round_trips.take() == [b"gets", b"cas", b"cas"]  # emptied, then unlisted
    assert store.list(digest) == []
    assert store.get(digest, kept.id) is None
    round_trips.take()

    store.revoke_everyone(now_ms=now)
    assert round_trips.take() == [b"gets", b"cas"]
    store.revoke_everyone(now_ms=now - 1)  # earlier: nothing to write
    assert round_trips.take() == [b"gets"]


def test_verify_is_one_get_with_a_thousand_sessions(
    store: MemcachedStore, memcached: MemcachedServer, round_trips: RoundTrips
) -> None:
    manager = SessionManager(store, max_sessions=2000)
    credentials = [manager.create("busy@example.com")[1] for _ in range(1000)]
    assert len(manager.sessions("busy@example.com")) == 1000
    round_trips.take()
    before = int(memcached.stats()["bytes_written"])
    assert manager.verify(credentials[0]) is not None
    assert manager.verify(credentials[-1]) is not None
    assert round_trips.take() == [b"get", b"get"]
    # Two small replies: the 1,000-entry index (tens of kB) was not read.
    assert int(memcached.stats()["bytes_written"]) - before < 8000


def test_get_is_one_command_that_reads_the_cutoff(
    store: MemcachedStore, memcached: MemcachedServer, round_trips: RoundTrips
) -> None:
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    before, credential = manager.create("bob@example.com")
    clock.advance(1)
    store.revoke_everyone(now_ms=clock.now)
    clock.advance(1)
    after, after_credential = manager.create("bob@example.com")
    round_trips.take()
    assert manager.check(credential) == (None, "revoked")
    assert manager.verify(after_credential) == after
    assert round_trips.commands == [b"get", b"get"]
    for _, command in round_trips.sent:  # item, marker and cutoff in the one command
        names = command.split(b"\r\n")[0].split()[1:]
        assert store.cutoff_key().encode() in names
        assert store.marker_key(credential.key_digest).encode() in names
    stone = store.get(credential.key_digest, before.id)
    assert stone is not None
    assert (stone.ended, stone.token_digest) == ("revoked", before.token_digest)


def test_reject_at_the_cap_reads_and_writes_nothing(
    store: MemcachedStore, memcached: MemcachedServer, round_trips: RoundTrips
) -> None:
    clock = Clock()
    manager = SessionManager(store, max_sessions=2, clock=clock)
    first, _ = manager.create("bob@example.com")
    clock.advance(1)
    manager.create("bob@example.com")
    digest = key_digest("bob@example.com")
    refused = session_at(clock.now + 1, "bob@example.com")
    names = [store.index_key(digest), store.marker_key(digest), store.cutoff_key()]
    names += [store.item_key(digest, s.id) for s in store.list(digest)]
    names.append(store.item_key(digest, refused.id))
    client = raw_client(memcached)
    before = client.gets_many(names)  # values and cas: any write changes the cas
    assert len(before) == 5
    round_trips.take()
    with pytest.raises(TooManySessions):
        store.create(
            key_digest("bob@example.com"),
            refused,
            max_sessions=2,
            now_ms=clock.now + 1,
            idle_timeout_ms=0,
            evict=False,
        )
    assert round_trips.take() == [b"gets", b"gets"]  # the index, then the items
    assert client.gets_many(names) == before
    client.close()
    # Dead sessions (idle, by this clock) make room: the login goes through, evicting
    # nobody.
    clock.advance(3600)
    ended = store.create(
        key_digest("bob@example.com"),
        session_at(clock.now, "bob@example.com"),
        max_sessions=2,
        now_ms=clock.now,
        idle_timeout_ms=60_000,
        evict=False,
    )
    assert ended == []
    assert store.get(key_digest("bob@example.com"), first.id) is None  # deleted


def test_no_token_in_any_stored_value(store: MemcachedStore, memcached: MemcachedServer) -> None:
    clock = Clock()
    manager = SessionManager(store, max_sessions=2, clock=clock)
    credentials = []
    for key in ("bob@example.com", "eve@example.com", "bob@example.com", "bob@example.com"):
        credentials.append(manager.create(key)[1])  # the last one evicts the first
        clock.advance(1)
    values = raw_values(memcached)
    dump = b"".join(name.encode() + value for name, value in values.items())
    for credential in credentials[1:]:
        assert credential.session_id.encode() in dump  # the dump does hold the sessions
    for credential in credentials:
        assert credential.token.encode() not in dump
        assert base64.urlsafe_b64decode(credential.token + "=") not in dump
        assert credential.token_digest() in dump or credential is credentials[0]
    assert b"bob@example.com" not in b"".join(name.encode() for name in values)


def test_lifetimes_above_thirty_days(store: MemcachedStore, memcached: MemcachedServer) -> None:
    manager = SessionManager(store, max_age=40 * 24 * 3600)
    session, credential = manager.create("bob@example.com")
    items = memcached.items_metadata()
    now = time.time()
    for name in (
        store.item_key(credential.key_digest, session.id),
        store.index_key(credential.key_digest),
        store.marker_key(credential.key_digest),
    ):
        # An absolute time at least 40 days ahead (memcached's clock may differ a little).
        assert int(items[name]["exp"]) - now > 40 * 24 * 3600 - 120
    assert manager.verify(credential) == session

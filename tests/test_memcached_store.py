"""Memcached-specific behaviour against real memcached processes: layout, round trips,
atomicity under threads, several servers, outages and budgets."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from pyramid_jeff import SessionManager, StoreUnavailable, TooManySessions, deadline
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.session import TOMBSTONE_MS, Session, unpack_record
from pyramid_jeff.stores.memcached import EPOCH_BYTES, GEN_BYTES, PREFIX_BYTES, MemcachedStore
from pyramid_jeff.stores.memcached.connection import _BudgetedSocket

from .conftest import need
from .helpers import Clock
from .memcached_server import MemcachedServer


@pytest.fixture
def memcached(memcached_server: MemcachedServer) -> MemcachedServer:
    """The shared server, emptied for this test."""
    memcached_server.flush()
    return memcached_server


@pytest.fixture
def store(memcached: MemcachedServer) -> Iterator[MemcachedStore]:
    store = MemcachedStore.from_url(memcached.url)
    yield store
    store.close()


@pytest.fixture
def private(tmp_path: Path) -> Iterator[MemcachedServer]:
    """A server of this test's own, to kill or freeze."""
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    server = MemcachedServer.start(tmp_path)
    yield server
    server.stop()


class RoundTrips:
    """Counts requests the store sends: pymemcache sends each command with one sendall."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = _BudgetedSocket.sendall

        def sendall(sock: _BudgetedSocket, data: Any, flags: int = 0) -> None:
            self.count += 1
            self.commands.append(bytes(data).split(b" ", 1)[0])
            self.sent.append((sock.getpeername()[1], bytes(data)))
            real(sock, data, flags)

        self.commands: list[bytes] = []
        self.sent: list[tuple[int, bytes]] = []  # (server port, the whole command)
        monkeypatch.setattr(_BudgetedSocket, "sendall", sendall)

    def take(self) -> list[bytes]:
        commands, self.commands, self.count, self.sent = self.commands, [], 0, []
        return commands


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    return RoundTrips(monkeypatch)


def raw_values(server: MemcachedServer) -> dict[str, bytes]:
    client = Client(("127.0.0.1", server.port), timeout=5, connect_timeout=5)
    try:
        return {name: client.get(name) for name in server.items_metadata()}
    finally:
        client.close()


def raw_get(server: MemcachedServer, name: str) -> Any:
    client = Client(("127.0.0.1", server.port), timeout=5, connect_timeout=5)
    try:
        return client.get(name)
    finally:
        client.close()


def metadata_of(server: MemcachedServer, name: str) -> dict[str, str]:
    """One item's metadata. The dump can miss an item that memcached is moving between
    its LRUs (one just read), so it is taken again until the item shows."""
    for _ in range(50):
        found = server.items_metadata().get(name)
        if found is not None:
            return found
        time.sleep(0.01)
    raise AssertionError(f"{name} is not stored")


def test_layout_and_round_trips_per_operation(
    store: MemcachedStore, memcached: MemcachedServer, round_trips: RoundTrips
) -> None:
    clock = Clock()
    manager = SessionManager(store, max_sessions=3, clock=clock)
    digest = key_digest("bob@example.com")
    first, credential = manager.create("bob@example.com")
    # The cutoff (a new server has none), the item, the index, the marker.
    assert round_trips.take() == [b"gets", b"add", b"add", b"add", b"add"]
    assert set(memcached.items_metadata()) == {
        store.cutoff_key(),
        store.item_key(digest, first.id),
        store.index_key(digest),
        store.marker_key(digest),
    }
    clock.advance(1)
    manager.create("bob@example.com")
    assert round_trips.take() == [b"gets", b"add", b"cas"]  # the marker needs no write

    for _ in range(10):
        assert manager.verify(credential) == first
    assert round_trips.take() == [b"get"] * 10  # one read each, no write

    clock.advance(61)
    assert manager.verify(credential) is not None
    assert round_trips.take() == [b"get", b"gets", b"cas"]  # read, then the refresh

    manager.create("bob@example.com")  # the third: still under the cap
    round_trips.take()
    ended = store.create(
        digest,
        session_at(clock.now, "bob@example.com"),
        max_sessions=3,
        now_ms=clock.now,
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
    ended = store.revoke_all(digest, keep=live[0].id, now_ms=clock.now, idle_timeout_ms=0)
    assert sorted(ended) == sorted(s.id for s in live[1:])
    # The ended stay listed as tombstones: no index write.
    assert round_trips.take() == [b"gets", b"gets", b"cas", b"cas"]
    assert [s.id for s in manager.sessions("bob@example.com")] == [live[0].id]
    round_trips.take()

    assert store.revoke(digest, live[0].id, now_ms=clock.now, idle_timeout_ms=0, tombstone=True)
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

    store.revoke_everyone(now_ms=clock.now)
    assert round_trips.take() == [b"gets", b"cas"]
    store.revoke_everyone(now_ms=clock.now - 1)  # earlier: nothing to write
    assert round_trips.take() == [b"gets"]


def session_at(now_ms: int, key: str, lifetime_ms: int = 3_600_000) -> Session:
    """A session as the manager would create it at ``now_ms``."""
    credential = Credential.mint(key)
    return Session(
        key=key,
        id=credential.session_id,
        created_ms=now_ms,
        last_seen_ms=now_ms,
        expires_ms=now_ms + lifetime_ms,
        token_digest=credential.token_digest(),
    )


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


@pytest.mark.parametrize(("threads", "cap"), [(16, 8), (16, 64)])
def test_concurrent_logins_lose_nothing(
    store: MemcachedStore, memcached: MemcachedServer, threads: int, cap: int
) -> None:
    manager = SessionManager(store, max_sessions=cap)
    created: list[Credential] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def login() -> None:
        barrier.wait()
        try:
            _, credential = manager.create("shared@example.com")
            with lock:
                created.append(credential)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=login) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    listed = {s.id for s in manager.sessions("shared@example.com")}
    assert len(listed) == min(threads, cap)
    assert listed <= {c.session_id for c in created}
    verified = {c.session_id for c in created if manager.verify(c) is not None}
    assert verified == listed  # every listed session works, every unlisted one is gone


def test_concurrent_touch_and_revoke_never_resurrect(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    digest = key_digest("racer@example.com")
    for _ in range(30):
        session, credential = manager.create("racer@example.com")
        clock.advance(61)
        barrier = threading.Barrier(3)
        outcome: dict[str, Any] = {}

        def toucher(
            name: str, session_id: str, barrier: threading.Barrier, outcome: dict[str, Any]
        ) -> None:
            barrier.wait()
            outcome[name] = store.touch(digest, session_id, clock.now)

        def revoker(session_id: str, barrier: threading.Barrier, outcome: dict[str, Any]) -> None:
            barrier.wait()
            outcome["revoked"] = manager.revoke("racer@example.com", session_id)

        workers = [
            threading.Thread(target=toucher, args=(f"t{i}", session.id, barrier, outcome))
            for i in range(2)
        ]
        workers.append(threading.Thread(target=revoker, args=(session.id, barrier, outcome)))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert outcome["revoked"] is True
        assert manager.check(credential) == (None, "revoked")
        stone = store.get(digest, session.id)
        assert stone is not None and stone.ended == "revoked"
        assert store.touch(digest, session.id, clock.now + 120_000) is False
        assert store.get(digest, session.id) == stone  # the touch changed nothing
    assert manager.sessions("racer@example.com") == []


def test_concurrent_revoke_all_and_logins_leave_no_unlisted_session(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    manager = SessionManager(store, max_sessions=6)
    digest = key_digest("target@example.com")
    created: list[Credential] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def login() -> None:
        while not stop.is_set():
            try:
                created.append(manager.create("target@example.com")[1])
            except StoreUnavailable:
                pass  # lost to a revocation: refused, never silently lost
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    def revoke_all() -> None:
        while not stop.is_set():
            manager.revoke_all("target@example.com")

    workers = [threading.Thread(target=login) for _ in range(4)]
    workers += [threading.Thread(target=revoke_all) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    stop.set()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(created) > 20
    # Every session that still works is listed...
    listed = {s.id for s in manager.sessions("target@example.com")}
    working = {c.session_id for c in created if manager.verify(c) is not None}
    assert working == listed
    # ...also by what memcached holds: no live item of this generation outside the index
    # (read by knowing every id ever created).
    client = Client(("127.0.0.1", memcached.port), timeout=5)
    marker = client.get(store.marker_key(digest))
    names = {store.item_key(digest, c.session_id): c.session_id for c in created}
    values = client.get_many(list(names))
    client.close()
    current = {
        names[name]
        for name, value in values.items()
        if value
        and value[:GEN_BYTES] == marker[:GEN_BYTES]
        and unpack_record(names[name], value[PREFIX_BYTES:]).ended is None  # no tombstone
    }
    assert current == listed
    # So one more revoke_all ends every login.
    assert manager.revoke_all("target@example.com") == len(listed)
    assert all(manager.verify(c) is None for c in created)


def test_a_lost_index_or_marker_ends_the_keys_sessions(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    """Memcached evicting the index must not leave sessions that revoke_all misses."""
    manager = SessionManager(store)
    digest = key_digest("bob@example.com")
    pairs = [manager.create("bob@example.com") for _ in range(3)]
    client = Client(("127.0.0.1", memcached.port), timeout=5)
    client.delete(store.index_key(digest), noreply=False)  # as an eviction would
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
    manager = SessionManager(store)
    digest = key_digest("bob@example.com")
    pairs = [manager.create("bob@example.com") for _ in range(3)]
    client = Client(("127.0.0.1", memcached.port), timeout=5)
    client.delete(store.index_key(digest), noreply=False)  # as an eviction would
    assert manager.revoke_all("bob@example.com") == 0  # it cannot count what it lost...
    assert [manager.verify(c) for _, c in pairs] == [None, None, None]  # ...but ends it all
    assert manager.sessions("bob@example.com") == []
    client.close()


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


def servers_url(servers: list[MemcachedServer]) -> str:
    return "memcached://" + ",".join(s.url.removeprefix("memcached://") for s in servers)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[list[MemcachedServer]]:
    """Two servers of this test's own, in the order of the store's URL."""
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    servers = [MemcachedServer.start(tmp_path / name) for name in ("a", "b")]
    yield servers
    for server in servers:
        server.stop()


def logins_on_both(
    store: MemcachedStore, manager: SessionManager, servers: list[MemcachedServer]
) -> dict[int, list[tuple[Session, Credential]]]:
    """Logins of several keys, by the port of the server each lives on (both hold some)."""
    by_port: dict[int, list[tuple[Session, Credential]]] = {s.port: [] for s in servers}
    for i in range(40):
        pair = manager.create(f"user{i}@example.com")
        by_port[store.node_for(pair[1].key_digest).address[1]].append(pair)
    assert all(len(pairs) >= 5 for pairs in by_port.values())
    return by_port


def test_revoke_everyone_writes_the_cutoff_on_every_server(
    two: list[MemcachedServer], round_trips: RoundTrips
) -> None:
    store = MemcachedStore.from_url(servers_url(two))
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    by_port = logins_on_both(store, manager, two)
    clock.advance(1)
    cutoff = clock.now
    round_trips.take()
    store.revoke_everyone(now_ms=cutoff)
    assert {port for port, _ in round_trips.sent} == {s.port for s in two}
    for server in two:
        assert int(raw_get(server, store.cutoff_key())[EPOCH_BYTES:]) == cutoff
        assert metadata_of(server, store.cutoff_key())["exp"] == "-1"  # never expires
    round_trips.take()
    for port, pairs in by_port.items():
        for _, credential in pairs:
            assert manager.check(credential) == (None, "revoked")
        # Each verification is one command, to the key's own server.
        assert [p for p, _ in round_trips.sent] == [port] * len(pairs)
        assert round_trips.take() == [b"get"] * len(pairs)
        for session, credential in pairs:
            stone = store.get(credential.key_digest, session.id)
            assert stone is not None and stone.ended == "revoked"
            assert not store.touch(credential.key_digest, session.id, clock.now + 120_000)
        round_trips.take()
    assert store.stats()["revoked_everyone_before_ms"] == cutoff
    # Logins after it work on both servers; an earlier cutoff changes nothing.
    clock.advance(1)
    later = logins_on_both(store, manager, two)
    store.revoke_everyone(now_ms=cutoff - 10)
    for pairs in later.values():
        assert all(manager.verify(c) == s for s, c in pairs)
    store.close()


def test_a_server_down_during_revoke_everyone_is_unavailable_after_the_others(
    two: list[MemcachedServer],
) -> None:
    store = MemcachedStore.from_url(servers_url(two), socket_timeout=0.3)
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    by_port = logins_on_both(store, manager, two)
    first, second = two  # the first server in the URL is the one that fails
    first.kill()
    clock.advance(1)
    with pytest.raises(StoreUnavailable, match=rf"1 of 2 .*127\.0\.0\.1:{first.port}"):
        store.revoke_everyone(now_ms=clock.now)
    assert int(raw_get(second, store.cutoff_key())[EPOCH_BYTES:]) == clock.now
    assert all(manager.verify(c) is None for _, c in by_port[second.port])
    store.close()


def test_a_server_frozen_during_revoke_everyone_keeps_its_sessions_until_a_retry(
    two: list[MemcachedServer],
) -> None:
    store = MemcachedStore.from_url(servers_url(two), socket_timeout=0.3)
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    by_port = logins_on_both(store, manager, two)
    first, second = two
    first.pause()
    clock.advance(1)
    try:
        with pytest.raises(StoreUnavailable, match="revoke_everyone"):
            store.revoke_everyone(now_ms=clock.now)
    finally:
        first.resume()
    assert all(manager.verify(c) is None for _, c in by_port[second.port])
    # What the error says: the frozen server kept its data, and its sessions...
    assert all(manager.verify(c) == s for s, c in by_port[first.port])
    store.revoke_everyone(now_ms=clock.now)  # ...until the call succeeds
    assert all(manager.verify(c) is None for _, c in by_port[first.port])
    store.close()


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
    client = Client(("127.0.0.1", memcached.port), timeout=5)
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
        client = Client(("127.0.0.1", server.port), timeout=5)
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
    client = Client(("127.0.0.1", memcached.port), timeout=5)
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


def test_concurrent_revoke_alls_name_each_session_once(
    store: MemcachedStore, memcached: MemcachedServer
) -> None:
    manager = SessionManager(store, max_sessions=100)
    digest = key_digest("bob@example.com")
    made = {manager.create("bob@example.com")[0].id for _ in range(30)}
    barrier = threading.Barrier(3)
    results: list[list[str]] = []

    def revoke_all() -> None:
        barrier.wait()
        now = time.time_ns() // 1_000_000
        results.append(store.revoke_all(digest, keep=None, now_ms=now, idle_timeout_ms=0))

    workers = [threading.Thread(target=revoke_all) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    named = [session_id for ended in results for session_id in ended]
    assert sorted(named) == sorted(made)  # every one, by exactly one of the calls
    assert {s.ended for s in store.list(digest)} == {"revoked"}


def test_stats_per_server(two: list[MemcachedServer]) -> None:
    store = MemcachedStore.from_url(servers_url(two), socket_timeout=0.3)
    names = [s.url.removeprefix("memcached://") for s in two]
    facts = store.stats()
    assert facts["backend"] == "memcached" and facts["servers"] == 2
    assert all(facts[f"{name} revoked_everyone_before_ms"] == "missing" for name in names)
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    by_port = logins_on_both(store, manager, two)
    facts = store.stats()
    assert facts["revoked_everyone_before_ms"] == -1  # logins wrote cutoffs, nobody revoked
    for name, server in zip(names, two, strict=True):
        # Per key: its session, index and marker; and the server's cutoff.
        assert facts[f"{name} curr_items"] == 3 * len(by_port[server.port]) + 1
        assert int(facts[f"{name} bytes"]) > 0
        assert facts[f"{name} evictions"] == 0
    store.revoke_everyone(now_ms=clock.now)
    assert store.stats()["revoked_everyone_before_ms"] == clock.now
    two[1].kill()
    facts = store.stats()
    assert f"{names[1]} error" in facts and f"{names[1]} curr_items" not in facts
    assert facts[f"{names[0]} revoked_everyone_before_ms"] == clock.now
    store.close()


def test_two_servers_share_keys_and_one_down_is_unavailable_not_a_logout(
    tmp_path: Path,
) -> None:
    if MemcachedServer.binary() is None:
        need("memcached is not installed (apt-get install memcached)")
    servers = [MemcachedServer.start(tmp_path / name) for name in ("a", "b")]
    try:
        url = "memcached://" + ",".join(s.url.removeprefix("memcached://") for s in servers)
        store = MemcachedStore.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        manager = SessionManager(store)
        logins = {
            f"user{i}@example.com": manager.create(f"user{i}@example.com")[1] for i in range(40)
        }
        held = [len(s.items_metadata()) for s in servers]
        assert all(count >= 15 for count in held)  # three items per key, on both servers
        by_port = {s.port: s for s in servers}
        on_a = {k for k in logins if store.node_for(key_digest(k)).address[1] == servers[0].port}
        for key in logins:  # every item of a key lives on the server the key hashes to
            digest = key_digest(key)
            home = by_port[store.node_for(digest).address[1]]
            assert store.marker_key(digest) in home.items_metadata()
        servers[0].kill()
        for key, credential in logins.items():
            if key in on_a:
                with pytest.raises(StoreUnavailable):
                    manager.verify(credential)
            else:
                assert manager.verify(credential) is not None  # never re-routed, never lost
        with pytest.raises(StoreUnavailable):
            manager.create(next(iter(on_a)))
        store.close()
    finally:
        for server in servers:
            server.stop()


def test_a_dead_server_fails_every_call_quickly(private: MemcachedServer) -> None:
    store = MemcachedStore.from_url(private.url)
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    session, credential = manager.create("bob@example.com")
    private.kill()
    clock.advance(61)
    calls: list[Callable[[], object]] = [
        lambda: store.get(credential.key_digest, session.id),
        lambda: manager.create("bob@example.com"),
        lambda: store.touch(credential.key_digest, session.id, clock.now),
        lambda: manager.revoke_all("bob@example.com"),
        lambda: manager.sessions("bob@example.com"),
        lambda: manager.revoke("bob@example.com", session.id),
        lambda: store.revoke_everyone(now_ms=clock.now),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="memcached"):
            call()
        assert time.monotonic() - started < 1.0  # refused at once: no retry loop
    facts = store.stats()  # an operator's view: names the server, raises nothing
    assert f"{private.url.removeprefix('memcached://')} error" in facts
    private.restart()  # an empty memcached: the session is gone, calls work again
    assert manager.verify(credential) is None


def test_a_frozen_server_is_bounded_by_the_timeout_and_the_budget(
    private: MemcachedServer,
) -> None:
    store = MemcachedStore.from_url(private.url, socket_timeout=0.5)
    manager = SessionManager(store)
    session, credential = manager.create("bob@example.com")
    private.pause()
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get(credential.key_digest, session.id)
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 1.5  # the socket timeout, not forever

        started = time.monotonic()
        with deadline.store_budget(0.3):
            for call in (
                lambda: manager.verify(credential),
                lambda: manager.create("bob@example.com"),
                lambda: manager.sessions("bob@example.com"),
            ):
                with pytest.raises(StoreUnavailable):
                    call()
        assert time.monotonic() - started < 0.8  # three calls share 0.3 s
    finally:
        private.resume()
    assert manager.verify(credential) == session  # nothing was lost by the freeze


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


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("memcached://", "without a host"),
        ("memcached://:11211", "without a host"),
        ("memcached://127.0.0.1:port", "bad port"),
        ("memcached://127.0.0.1:0", "bad port"),
        ("memcached://127.0.0.1:65536", "bad port"),
        ("memcached://a:1,,b:2", "without a host"),
        ("memcached://127.0.0.1:11211/0", "no path"),
        ("memcached://127.0.0.1:11211?timeout=1", "no path"),
        ("memcached://user:pw@127.0.0.1", "no user"),
        ("memcached://a:1,a:1", "twice"),
        ("redis://127.0.0.1:6379", "not a memcached"),
        ("memcached://[::1", "IPv6"),
    ],
)
def test_malformed_urls(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MemcachedStore.from_url(url)


def test_well_formed_urls() -> None:
    store = MemcachedStore.from_url("memcached://a,b:1,[::1]:2/")
    assert sorted(node.address for node in store.nodes.values()) == [
        ("::1", 2),
        ("a", 11211),
        ("b", 1),
    ]

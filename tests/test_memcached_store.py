"""Memcached-specific behaviour against real memcached processes: layout, round trips,
atomicity under threads, several servers, outages and budgets."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from pyramid_jeff import SessionManager, StoreUnavailable, deadline
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.memcached_store import GEN_BYTES, MemcachedStore, _BudgetedSocket

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
            real(sock, data, flags)

        self.commands: list[bytes] = []
        monkeypatch.setattr(_BudgetedSocket, "sendall", sendall)

    def take(self) -> list[bytes]:
        commands, self.commands, self.count = self.commands, [], 0
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


def test_layout_and_round_trips_per_operation(
    store: MemcachedStore, memcached: MemcachedServer, round_trips: RoundTrips
) -> None:
    clock = Clock()
    manager = SessionManager(store, max_sessions=3, clock=clock)
    digest = key_digest("bob@example.com")
    first, credential = manager.create("bob@example.com")
    assert round_trips.take() == [b"gets", b"add", b"add", b"add"]  # item, index, marker
    assert set(memcached.items_metadata()) == {
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
    manager.create("bob@example.com")  # at the cap: read the items, evict the oldest
    assert round_trips.take() == [b"gets", b"gets", b"cas", b"add", b"cas"]
    assert manager.verify(credential) is None
    assert round_trips.take() == [b"get"]

    assert manager.end(Credential.mint("bob@example.com")) is False  # unknown id: one read
    assert round_trips.take() == [b"gets"]
    live = manager.sessions("bob@example.com")
    assert round_trips.take() == [b"gets", b"get"]
    assert len(live) == 3
    assert manager.revoke_all("bob@example.com", keep=live[0].id) == 2
    assert round_trips.take() == [b"gets", b"gets", b"cas", b"cas", b"cas"]
    assert [s.id for s in manager.sessions("bob@example.com")] == [live[0].id]


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
        assert manager.verify(credential) is None
        assert store.get(digest, session.id) is None
        assert store.touch(digest, session.id, clock.now + 120_000) is False
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
        if value and value[:GEN_BYTES] == marker[:GEN_BYTES]
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
    calls = [
        lambda: store.get(credential.key_digest, session.id),
        lambda: manager.create("bob@example.com"),
        lambda: store.touch(credential.key_digest, session.id, clock.now),
        lambda: manager.revoke_all("bob@example.com"),
        lambda: manager.sessions("bob@example.com"),
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="memcached"):
            call()
        assert time.monotonic() - started < 1.0  # refused at once: no retry loop
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

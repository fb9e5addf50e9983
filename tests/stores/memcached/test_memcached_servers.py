"""The memcached store on two servers: keys spread over them, revoke_everyone written on
each (and one down or frozen meanwhile), stats per server. (The memcached store's other
tests: see test_memcached_layout.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyramid_jeff import SessionManager, StoreUnavailable
from pyramid_jeff.credentials import key_digest
from pyramid_jeff.stores.memcached import EPOCH_BYTES, MemcachedStore

from ...conftest import need
from ...helpers import Clock
from ...memcached_server import MemcachedServer
from .helpers import (
    RoundTrips,
    logins_on_both,
    metadata_of,
    raw_get,
    servers_url,
    spread_logins,
)


def test_revoke_everyone_writes_the_cutoff_on_every_server(
    two: list[MemcachedServer], round_trips: RoundTrips
) -> None:
    store, clock, manager, by_port = spread_logins(two)
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
    store, clock, manager, by_port = spread_logins(two, socket_timeout=0.3)
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
    store, clock, manager, by_port = spread_logins(two, socket_timeout=0.3)
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

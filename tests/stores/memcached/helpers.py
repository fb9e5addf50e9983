"""What the memcached store's tests share: the requests a store sends, what a server holds
read behind the store's back, sessions as the manager makes them, logins spread over two
servers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pymemcache.client.base import Client

from pyramid_jeff import SessionManager
from pyramid_jeff.credentials import Credential
from pyramid_jeff.session import Session, new_session, pack_meta
from pyramid_jeff.stores.memcached import MemcachedStore
from pyramid_jeff.stores.memcached.connection import _BudgetedSocket

from ...helpers import Clock
from ...memcached_server import MemcachedServer


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


def raw_client(server: MemcachedServer, **options: Any) -> Client:
    """A client of the test's own on ``server`` (5 s timeouts unless told)."""
    return Client(("127.0.0.1", server.port), **{"timeout": 5, **options})


def raw_values(server: MemcachedServer) -> dict[str, bytes]:
    reader = raw_client(server, connect_timeout=5)
    try:
        return {name: reader.get(name) for name in server.items_metadata()}
    finally:
        reader.close()


def raw_get(server: MemcachedServer, name: str) -> Any:
    reader = raw_client(server, connect_timeout=5)
    try:
        return reader.get(name)
    finally:
        reader.close()


def metadata_of(server: MemcachedServer, name: str) -> dict[str, str]:
    """One item's metadata. The dump can miss an item that memcached is moving between
    its LRUs (one just read), so it is taken again until the item shows."""
    for _ in range(50):
        found = server.items_metadata().get(name)
        if found is not None:
            return found
        time.sleep(0.01)
    raise AssertionError(f"{name} is not stored")


def session_at(now_ms: int, key: str, lifetime_ms: int = 3_600_000) -> Session:
    """A session as the manager would create it at ``now_ms``."""
    return new_session(Credential.mint(key), key, now_ms, lifetime_ms, None, None, pack_meta(None))


def servers_url(servers: list[MemcachedServer]) -> str:
    return "memcached://" + ",".join(s.url.removeprefix("memcached://") for s in servers)


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


def spread_logins(
    servers: list[MemcachedServer], **store_options: Any
) -> tuple[MemcachedStore, Clock, SessionManager, dict[int, list[tuple[Session, Credential]]]]:
    """A store on ``servers``, a manager on it by a clock of the test's own, and the
    logins of :func:`logins_on_both`."""
    store = MemcachedStore.from_url(servers_url(servers), **store_options)
    clock = Clock()
    manager = SessionManager(store, clock=clock)
    return store, clock, manager, logins_on_both(store, manager, servers)

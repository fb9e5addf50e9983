"""The servers of a store, which one holds a key, the names of its items, and the
commands and compare-and-swap writes that every operation shares.

All items of one key live on one server: servers are chosen by rendezvous hashing of
the key digest (pymemcache's ``RendezvousHash``), and a server that is down is never
replaced by another one (that would be a logout): its keys raise
:class:`~pyramid_jeff.StoreUnavailable` until it is back.

The index and the marker change only by ``cas`` (or ``add`` when missing), with at most
:data:`CAS_ATTEMPTS` tries; past them a call raises ``StoreUnavailable``, never loses a
login silently.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from pymemcache.client.rendezvous import RendezvousHash

from ...errors import StoreUnavailable
from .connection import Node
from .records import (
    MARKER_SLACK_MS,
    Cutoff,
    Index,
    Marker,
    cutoff_value,
    exptime_for,
    index_value,
    marker_value,
    parse_cutoff,
    parse_index,
    parse_marker,
)

# Tries of one compare-and-swap step before the call gives up with StoreUnavailable.
CAS_ATTEMPTS = 16


def contention(what: str) -> StoreUnavailable:
    return StoreUnavailable(f"memcached: {what}: {CAS_ATTEMPTS} compare-and-swap conflicts")


def backoff(attempt: int) -> None:
    # A cas lost to a concurrent writer: a short random pause spreads the contenders
    # (bounded: at most about 0.1 s over all attempts, and only under contention).
    time.sleep(random.uniform(0, 0.0005 * (attempt + 1)))


class Cluster:
    """The memcached servers of a store, the names of its items and the commands sent
    to them: the base of :class:`~pyramid_jeff.stores.memcached.MemcachedStore`, whose
    operations its subclasses hold."""

    def __init__(
        self,
        servers: Iterable[tuple[str, int]],
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 50,
        key_prefix: str = "jeff:",
    ) -> None:
        if not (key_prefix.isascii() and key_prefix.isprintable()) or " " in key_prefix:
            raise ValueError("key_prefix must be printable ASCII without spaces")
        if len(key_prefix) > 100:
            raise ValueError("key_prefix must be at most 100 characters (memcached keys: 250)")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.key_prefix = key_prefix
        # What one request may wait on this store in total (the tween opens it).
        self.request_budget: float | None = socket_timeout
        self.nodes: dict[str, Node] = {}
        for host, port in servers:
            node = Node(
                host,
                port,
                timeout=socket_timeout,
                connect_timeout=socket_connect_timeout,
                max_connections=max_connections,
            )
            if node.name in self.nodes:
                raise ValueError(f"server {node.name} is listed twice")
            self.nodes[node.name] = node
        if not self.nodes:
            raise ValueError("at least one memcached server is needed")
        self._single = next(iter(self.nodes.values())) if len(self.nodes) == 1 else None
        hasher = RendezvousHash()
        for name in self.nodes:
            hasher.add_node(name)
        # The hash is pure Python (some microseconds per server): remembered per key.
        self._route: Callable[[str], str] = lru_cache(maxsize=16384)(hasher.get_node)

    # -- names, routing and commands -----------------------------------------------

    def item_key(self, key_digest: str, session_id: str) -> str:
        return f"{self.key_prefix}s:{key_digest}:{session_id}"

    def index_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}k:{key_digest}"

    def marker_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}g:{key_digest}"

    def cutoff_key(self) -> str:
        """The revoke-everyone cutoff: one item of this name on every server."""
        return f"{self.key_prefix}everyone"

    def node_for(self, key_digest: str) -> Node:
        """The server holding every item of this key."""
        if self._single is not None:
            return self._single
        return self.nodes[self._route(key_digest)]

    def _read_index(
        self, node: Node, key_digest: str, *items: str
    ) -> tuple[dict[str, tuple[Any, Any]], Index, Marker, Cutoff]:
        """``gets`` a key's index and marker, its server's cutoff and ``items``, in one
        command: what it got, and the index, the marker and the cutoff read from it."""
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        cutoff_name = self.cutoff_key()
        got = self._gets(node, [index_name, marker_name, cutoff_name, *items])
        index, marker = parse_index(got, index_name), parse_marker(got, marker_name)
        return got, index, marker, parse_cutoff(*got.get(cutoff_name, (None, None)))

    def _gets(self, node: Node, names: list[str]) -> dict[str, tuple[Any, Any]]:
        got: dict[str, tuple[Any, Any]] = node.run("gets", lambda c: c.gets_many(names))
        return got

    def _cas(self, node: Node, name: str, value: bytes, cas: Any, exptime: int) -> bool | None:
        """True: stored; False: someone else wrote it since; None: it is gone."""
        result: bool | None = node.run("cas", lambda c: c.cas(name, value, cas, exptime))
        return result

    def _add(self, node: Node, name: str, value: bytes, exptime: int) -> bool:
        return bool(node.run("add", lambda c: c.add(name, value, exptime, noreply=False)))

    def _set(self, node: Node, name: str, value: bytes, exptime: int) -> None:
        node.run("set", lambda c: c.set(name, value, exptime, noreply=False))

    def _delete_many(self, node: Node, names: list[str]) -> None:
        if names:
            node.run("delete", lambda c: c.delete_many(names, noreply=False))

    # -- compare-and-swap writes that several operations share ---------------------

    def _write_cutoff(self, node: Node, old: Cutoff, new: Cutoff) -> bool:
        """``cas`` (or ``add``) the cutoff item, with no expiry; ``False`` if another
        writer got there first."""
        assert new.epoch is not None
        name, value = self.cutoff_key(), cutoff_value(new.epoch, new.ms)
        if old.present:
            return bool(self._cas(node, name, value, old.cas, 0))
        return self._add(node, name, value, 0)  # 0: never expires

    def _write_index(
        self,
        node: Node,
        key_digest: str,
        index: Index,
        gen: bytes,
        entries: list[list[Any]],
        now_ms: int,
    ) -> bool:
        """``cas`` (or ``add``) the index; ``False`` if another writer got there first.
        It lives as long as the longest of its sessions."""
        value = index_value(gen, entries)
        exptime = exptime_for(max((e[2] for e in entries), default=now_ms) - now_ms)
        name = self.index_key(key_digest)
        if index.present:
            return bool(self._cas(node, name, value, index.cas, exptime))
        return self._add(node, name, value, exptime)

    def _follow(
        self, node: Node, key_digest: str, marker: Marker, gen: bytes, needed_ms: int,
        now_ms: int,
    ) -> bool:  # fmt: skip
        """Make the marker carry ``gen``, the index's generation, and live past
        ``needed_ms``. ``False`` if the index no longer has that generation.

        Moving it to the index's generation ends the sessions of the one it held (they
        were listed nowhere: a lost index); a session is valid only once this is done.
        """
        index_name, name = self.index_key(key_digest), self.marker_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
                got = self._gets(node, [index_name, name])
                if parse_index(got, index_name).gen != gen:
                    return False
                marker = parse_marker(got, name)
            if marker.gen == gen and marker.max_expires_ms >= needed_ms:
                return True
            max_expires = needed_ms + MARKER_SLACK_MS
            if marker.gen == gen:
                max_expires = max(max_expires, marker.max_expires_ms)
            value = marker_value(gen, max_expires)
            exptime = exptime_for(max_expires - now_ms)
            if marker.present:
                if self._cas(node, name, value, marker.cas, exptime):
                    return True
            elif self._add(node, name, value, exptime):
                return True
        raise contention("marker")

"""The store: :class:`MemcachedStore`, its reads and its per-server operations.

Memcached evicts items under memory pressure (unless started with ``-M``):

- an evicted session item: that browser is logged out;
- an evicted marker: every session of that key fails verification until the next login,
  ``list`` or ``revoke_all`` of the key rewrites the marker from the index (which
  brings back the sessions the index lists; never a revoked one, each of which is
  tombstoned or gone);
- an evicted index: its sessions cannot be listed, so the next operation that reads it
  (a login, ``list``, ``revoke_all`` of that key) starts a new generation, which ends
  every session of the key at once. Until then those sessions keep working;
- an evicted cutoff: every session of that server is logged out (see
  :class:`~.records.Cutoff`).

Eviction never lets a session live longer than the store promised; it only logs users
out. Run memcached with ``-M`` (errors instead of evictions) and enough ``-m`` memory to
keep every login.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from ...errors import StoreUnavailable
from ...session import Session, pack_record
from .cluster import CAS_ATTEMPTS, backoff, contention
from .connection import Node
from .login import Login
from .records import (
    EPOCH_BYTES,
    GEN_BYTES,
    NO_CUTOFF,
    PREFIX_BYTES,
    TOMBSTONE,
    Cutoff,
    as_shown,
    decode,
    exptime_for,
    is_current,
    parse_cutoff,
)
from .revocation import Revocation
from .url import parse_url

log = logging.getLogger(__package__)


class MemcachedStore(Login, Revocation):
    """Sessions in memcached: one or several servers, every change by CAS.

    Inside a request (see :mod:`pyramid_jeff.deadline`) every store call counts against
    the request's budget: it is checked before each call, and each wait (a free pooled
    connection, connecting, each send and receive) gets at most what is left.
    """

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 50,
        key_prefix: str = "jeff:",
    ) -> MemcachedStore:
        """A store for ``memcached://host[:port][,host[:port]...]`` (port 11211 by default).

        Connects lazily. Every command fails within ``socket_timeout`` (connecting:
        ``socket_connect_timeout``); a call waits at most ``socket_timeout`` for one of
        the ``max_connections`` connections per server. ``ValueError`` names what is
        wrong with a malformed URL.
        """
        return cls(
            parse_url(url),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            key_prefix=key_prefix,
        )

    def get(self, key_digest: str, session_id: str) -> Session | None:
        """Verifying a request: ONE ``get`` command (one round trip) of the session
        item, the marker and the cutoff; the index is never read on the request path."""
        item_name, marker_name = self.item_key(key_digest, session_id), self.marker_key(key_digest)
        names = [item_name, marker_name, self.cutoff_key()]
        node = self.node_for(key_digest)
        got: dict[str, bytes] = node.run("get", lambda c: c.get_many(names))
        value, marker = got.get(item_name), got.get(marker_name)
        if not value:
            return None  # gone, or a logout's empty item
        cutoff = parse_cutoff(got.get(self.cutoff_key()))
        current = marker is not None and is_current(value, marker[:GEN_BYTES], cutoff)
        stored = decode(session_id, value)
        if stored is None:
            if current:
                raise ValueError(f"corrupt session item {item_name}")
            return None  # unreadable, and of an ended generation or epoch anyway
        return as_shown(stored, current, cutoff)

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        """``gets`` session + marker + cutoff, ``cas``: 2 round trips. Update-only
        (``cas`` never creates), so a revoked session stays dead; of concurrent refreshes
        only one writes."""
        item_name, marker_name = self.item_key(key_digest, session_id), self.marker_key(key_digest)
        cutoff_name = self.cutoff_key()
        node = self.node_for(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
            got = self._gets(node, [item_name, marker_name, cutoff_name])
            value, cas = got.get(item_name, (None, None))
            marker = got.get(marker_name, (None, None))[0]
            stored = None if value is None else decode(session_id, value)
            if stored is None or marker is None:
                return False
            cutoff = parse_cutoff(got.get(cutoff_name, (None, None))[0])
            shown = as_shown(stored, is_current(value, marker[:GEN_BYTES], cutoff), cutoff)
            if shown is None or shown.ended is not None:
                return False  # ended: a tombstone stays as it is
            if last_seen_ms < stored.last_seen_ms + max(min_interval_ms, 1):
                return True
            new = value[:PREFIX_BYTES] + pack_record(stored.seen_at(last_seen_ms))
            result = self._cas(
                node, item_name, new, cas, exptime_for(stored.expires_ms - last_seen_ms)
            )
            if result is not False:
                return bool(result)  # None: ended meanwhile, and cas never re-creates it
            # Someone else wrote it (another refresh, a revocation): read it again.
        raise contention("touch")

    def list(self, key_digest: str) -> list[Session]:
        """``gets`` index + marker + cutoff, ``get`` the items: 2 round trips."""
        node = self.node_for(key_digest)
        _, index, marker, cutoff = self._read_index(node, key_digest)
        now_ms = time.time_ns() // 1_000_000
        if index.gen is None:
            if marker.gen is not None:
                # A lost index: its sessions cannot be listed, so end them all now
                # (a new generation) rather than answer "none" while they still work.
                gen = secrets.token_bytes(GEN_BYTES)
                if self._write_index(node, key_digest, index, gen, [], now_ms):
                    self._follow(node, key_digest, marker, gen, now_ms, now_ms)
            return []
        gen = index.gen
        if marker.gen != gen:
            needed = max((e[2] for e in index.entries), default=now_ms)
            if not self._follow(node, key_digest, marker, gen, needed, now_ms):
                return []  # rebuilt meanwhile: nothing of this generation is listed
        names = {self.item_key(key_digest, e[0]): e[0] for e in index.entries}
        items: dict[str, bytes] = node.run("get", lambda c: c.get_many(list(names)))
        sessions: list[Session] = []
        for name, value in items.items():
            if value == TOMBSTONE:
                continue
            stored, current = decode(names[name], value), is_current(value, gen, cutoff)
            if stored is None:
                if current:
                    log.warning("skipping an unreadable session item %s", name)
                continue
            shown = as_shown(stored, current, cutoff)
            if shown is not None:
                sessions.append(shown)
        return sessions

    def revoke_everyone(self, *, now_ms: int) -> None:
        """Raise the cutoff of every server to ``now_ms`` (``add`` or ``cas``, never
        lowered): per server, ``gets`` the cutoff and ``add`` or ``cas`` it, 2 round
        trips (1 where it is already later). Creation times come from the application's
        clocks, so clocks that differ blur the cutoff by the difference.

        Every server is tried; if any failed, :class:`~pyramid_jeff.StoreUnavailable`
        names them once all were tried. That server's sessions still work (once it
        answers again, if it kept its data) until a call succeeds: call it again.
        """
        failed: list[str] = []
        for node in self.nodes.values():
            try:
                self._raise_cutoff(node, now_ms)
            except StoreUnavailable as exc:
                failed.append(str(exc))
        if failed:
            raise StoreUnavailable(
                f"memcached: revoke_everyone failed on {len(failed)} of {len(self.nodes)} "
                f"servers, whose sessions still work: {'; '.join(failed)}"
            )

    def _raise_cutoff(self, node: Node, now_ms: int) -> None:
        name = self.cutoff_key()
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
            cutoff = parse_cutoff(*self._gets(node, [name]).get(name, (None, None)))
            if cutoff.epoch is not None and cutoff.ms >= now_ms:
                return
            # A missing cutoff ended every session of the server: a new epoch says so.
            epoch = cutoff.epoch or secrets.token_bytes(EPOCH_BYTES)
            if self._write_cutoff(node, cutoff, Cutoff(True, None, epoch, now_ms)):
                return
        raise contention(f"revoke_everyone on {node.name}")

    def stats(self) -> dict[str, int | str]:
        """Cheap facts: per server ``curr_items``, ``bytes``, ``evictions`` (memcached's
        ``stats``) and its cutoff (``"missing"``: no session of it counts);
        ``revoked_everyone_before_ms`` is the lowest cutoff (-1: none). A server that
        cannot answer is named with ``error``, not raised. Per server, ``stats`` and
        ``get`` the cutoff: 2 round trips. There is no ``sweep``: memcached drops
        expired items by itself."""
        facts: dict[str, int | str] = {"backend": "memcached", "servers": len(self.nodes)}
        cutoffs: list[int] = []
        name = self.cutoff_key()
        for server, node in self.nodes.items():
            try:
                raw: dict[bytes, Any] = node.run("stats", lambda c: c.stats())
                value = node.run("get", lambda c: c.get(name))
            except StoreUnavailable as exc:
                facts[f"{server} error"] = str(exc)
                continue
            for fact in ("curr_items", "bytes", "evictions"):
                facts[f"{server} {fact}"] = int(raw.get(fact.encode("ascii"), 0))
            cutoff = parse_cutoff(value)
            if cutoff.epoch is None:
                facts[f"{server} revoked_everyone_before_ms"] = "missing"
            else:
                facts[f"{server} revoked_everyone_before_ms"] = cutoff.ms
                cutoffs.append(cutoff.ms)
        facts["revoked_everyone_before_ms"] = min(cutoffs, default=NO_CUTOFF)
        return facts

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()

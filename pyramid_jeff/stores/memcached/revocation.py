"""Ending the sessions of a key: ``revoke`` (one) and ``revoke_all``.

A logout, a rotation and a revocation without ``tombstone`` empty the item (see
:data:`~.records.TOMBSTONE`) and unlist it; an operator's revocation
(``revoke(tombstone=True)``, ``revoke_all``) turns a live session into a "revoked"
tombstone, still listed.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from .cluster import CAS_ATTEMPTS, Cluster, backoff, contention
from .connection import Node
from .records import (
    GEN_BYTES,
    PREFIX_BYTES,
    TOMBSTONE,
    TOMBSTONE_TTL,
    Cutoff,
    Index,
    Marker,
    as_shown,
    decode,
    exptime_for,
    is_current,
    parse_cutoff,
    parse_index,
    parse_marker,
    tombstone_item,
)

log = logging.getLogger(__package__)

# What revoke_all did with one listed item.
_ENDED, _KEPT, _GONE, _DOOMED = "ended", "kept", "gone", "doomed"


class Revocation(Cluster):
    """The ``revoke`` and ``revoke_all`` of
    :class:`~pyramid_jeff.stores.memcached.MemcachedStore`."""

    def revoke(
        self,
        key_digest: str,
        session_id: str,
        *,
        now_ms: int,
        idle_timeout_ms: int,
        token_digest: bytes | None = None,
        key: str | None = None,
        tombstone: bool = False,
    ) -> bool:
        """End one session; with ``token_digest``, only if it is that session's; with
        ``key``, only if it is a session of that key (two keys' digests may collide).
        With ``tombstone``, a live session becomes a "revoked" tombstone (still listed);
        else, and for a dead one, its item is emptied and unlisted.

        ``gets`` session + marker + index + cutoff, ``cas`` the item, ``cas`` the index
        to unlist it: 3 round trips; with ``tombstone``, a live session becomes a
        tombstone and stays listed: 2.
        """
        node = self.node_for(key_digest)
        item_name = self.item_key(key_digest, session_id)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        names = [item_name, marker_name, index_name, self.cutoff_key()]
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
            got = self._gets(node, names)
            value, cas = got.get(item_name, (None, None))
            if value is None or value == TOMBSTONE:
                return False
            stored = decode(session_id, value)
            if token_digest is not None and (
                stored is None or not hmac.compare_digest(stored.token_digest, token_digest)
            ):
                return False
            if key is not None and stored is not None and stored.key != key:
                return False
            cutoff = parse_cutoff(got.get(self.cutoff_key(), (None, None))[0])
            current = is_current(value, parse_marker(got, marker_name).gen, cutoff)
            shown = None if stored is None else as_shown(stored, current, cutoff)
            if tombstone and shown is not None and shown.ended is not None:
                return False  # already a tombstone: it keeps telling its browser why
            was_live = shown is not None and shown.is_live(now_ms, idle_timeout_ms)
            new, exptime = TOMBSTONE, TOMBSTONE_TTL
            if tombstone and was_live and stored is not None:
                new, exptime = tombstone_item(value[:PREFIX_BYTES], stored, "revoked", now_ms)
            result = self._cas(node, item_name, new, cas, exptime)
            if result is None:
                return False  # ended meanwhile by someone else
            if result:
                break
            # Touched meanwhile: read it again (the token and the key do not change).
        else:
            raise contention("revoke")
        if new == TOMBSTONE:
            self._unlist(node, key_digest, got, {session_id}, now_ms=now_ms)
        return was_live

    def _unlist(
        self,
        node: Node,
        key_digest: str,
        got: dict[str, tuple[Any, Any]],
        ids: set[str],
        *,
        now_ms: int,
    ) -> None:
        """Remove ``ids`` (sessions already ended) from the index. Best effort past the
        attempts: a listed ended session is only a dead entry, pruned later."""
        index_name = self.index_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
                got = self._gets(node, [index_name])
            index = parse_index(got, index_name)
            if index.gen is None:
                return  # no index: the next login or list starts a new generation
            entries = [e for e in index.entries if e[0] not in ids]
            if len(entries) == len(index.entries):
                return
            if self._write_index(node, key_digest, index, index.gen, entries, now_ms):
                return
        log.warning("memcached: left %d ended sessions listed after conflicts", len(ids))

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> list[str]:
        """End every session but ``keep``: the live ones become "revoked" tombstones,
        the dead ones go (tombstones stay); with ``key``, only sessions of that key.
        Returns the ids of the live ones ended.

        ``gets`` index + marker + cutoff, ``gets`` the items, one ``cas`` tombstone per
        live session: 2 round trips + live sessions (+ a ``delete`` of the dead and a
        ``cas`` of the index to unlist them, when there are any). After memcached
        evicted the index, a new generation ends every session of the key: ``keep``
        stays, but the others cannot be named, so it returns ``[]``.
        """
        node = self.node_for(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
            got, index, marker, cutoff = self._read_index(node, key_digest)
            if index.gen is None:
                if marker.gen is None:
                    return []  # no generation: no session of this key is valid
                if self._repair_keeping(
                    node, key_digest, index, marker, cutoff, keep, key, now_ms
                ):
                    return []
                continue
            if marker.gen == index.gen:
                break
            needed = max((e[2] for e in index.entries), default=now_ms)
            if self._follow(node, key_digest, marker, index.gen, needed, now_ms):
                break
        else:
            raise contention("revoke_all")
        targets = [e[0] for e in index.entries if e[0] != keep]
        names = {session_id: self.item_key(key_digest, session_id) for session_id in targets}
        items = self._gets(node, list(names.values()))
        ended: list[str] = []
        unlisted: set[str] = set()
        doomed: list[str] = []
        for session_id in targets:
            value, cas = items.get(names[session_id], (None, None))
            outcome = self._end_listed(
                node, names[session_id], session_id, value, cas, index.gen, cutoff,
                key=key, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
            )  # fmt: skip
            if outcome == _ENDED:
                ended.append(session_id)
            elif outcome != _KEPT:
                unlisted.add(session_id)
                if outcome == _DOOMED:
                    doomed.append(names[session_id])
        self._delete_many(node, doomed)
        self._unlist(node, key_digest, got, unlisted, now_ms=now_ms)
        return ended

    def _end_listed(
        self,
        node: Node,
        name: str,
        session_id: str,
        value: Any,
        cas: Any,
        gen: bytes,
        cutoff: Cutoff,
        *,
        key: str | None,
        now_ms: int,
        idle_timeout_ms: int,
    ) -> str:
        """``revoke_all`` of one listed item: a live session becomes a "revoked"
        tombstone (``_ENDED``: by us; a concurrent call that wins the ``cas`` counts
        it, not we), a tombstone or another key's session is ``_KEPT``, a gone one
        ``_GONE``, anything else dead or unreadable ``_DOOMED`` (deleted)."""
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                backoff(attempt)
                value, cas = self._gets(node, [name]).get(name, (None, None))
            if value is None or value == TOMBSTONE:
                return _GONE
            stored = decode(session_id, value)
            if stored is not None and key is not None and stored.key != key:
                return _KEPT  # another key's session: it stays listed
            if stored is None or not is_current(value, gen, cutoff):
                return _DOOMED  # nobody's (unreadable), or of an ended generation or epoch
            shown = as_shown(stored, True, cutoff)
            if shown is not None and shown.ended is not None:
                return _KEPT  # a tombstone (or one revoke_everyone ended) keeps telling why
            if shown is None or not shown.is_live(now_ms, idle_timeout_ms):
                return _DOOMED
            new, exptime = tombstone_item(value[:PREFIX_BYTES], stored, "revoked", now_ms)
            result = self._cas(node, name, new, cas, exptime)
            if result is None:
                return _GONE  # ended by someone else meanwhile
            if result:
                return _ENDED
            # Touched meanwhile: read it again.
        raise contention("revoke_all")

    def _repair_keeping(
        self,
        node: Node,
        key_digest: str,
        index: Index,
        marker: Marker,
        cutoff: Cutoff,
        keep: str | None,
        key: str | None,
        now_ms: int,
    ) -> bool:
        """``revoke_all`` over a lost index: a new generation ends every session; a live
        ``keep`` moves to it. ``False`` if a concurrent writer got there first."""
        gen = secrets.token_bytes(GEN_BYTES)
        kept: list[list[Any]] = []
        keep_name = None if keep is None else self.item_key(key_digest, keep)
        keep_value: Any = None
        keep_cas: Any = None
        if keep is not None and keep_name is not None:
            keep_value, keep_cas = self._gets(node, [keep_name]).get(keep_name, (None, None))
            stored = None if keep_value is None else decode(keep, keep_value)
            if (
                stored is not None
                and is_current(keep_value, marker.gen, cutoff)
                and (key is None or stored.key == key)
            ):
                kept = [[keep, stored.created_ms, stored.expires_ms]]
        if not self._write_index(node, key_digest, index, gen, kept, now_ms):
            return False
        if kept and keep_name is not None:
            # From here until the marker follows, ``keep`` fails verification: a window
            # of one round trip, only after memcached evicted the index.
            moved = gen + keep_value[GEN_BYTES:]
            if not self._cas(node, keep_name, moved, keep_cas, exptime_for(kept[0][2] - now_ms)):
                log.warning("memcached: the session to keep changed while its index was rebuilt")
        needed = max([now_ms, *(e[2] for e in kept)])
        self._follow(node, key_digest, marker, gen, needed, now_ms)
        return True

"""A login (``create``): a session stored, then listed in its key's index, the marker
following the index's generation."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from ...errors import StoreUnavailable, TooManySessions
from ...session import Session, pack_record
from .cluster import CAS_ATTEMPTS, Cluster, backoff, contention
from .connection import Node
from .records import (
    EPOCH_BYTES,
    GEN_BYTES,
    NO_CUTOFF,
    TOMBSTONE,
    TOMBSTONE_TTL,
    Cutoff,
    Index,
    exptime_for,
    tombstone_item,
)
from .room import Carried, Room, plan_room

log = logging.getLogger(__package__)

# What _plan_login decides: the generation, the entries that stay listed and the room
# to make at the cap (None: below it).
_Plan = tuple[bytes, list[list[Any]], Room | None]


class _Progress:
    """What one login has done so far, kept across its compare-and-swap attempts."""

    def __init__(
        self, node: Node, key_digest: str, session: Session, item_name: str, carried: Carried,
        now_ms: int,
    ) -> None:  # fmt: skip
        self.node = node
        self.key_digest = key_digest
        self.session = session
        self.item_name = item_name
        self.record = pack_record(session)
        self.item_exptime = exptime_for(session.expires_ms - now_ms)
        self.carried = carried
        self.added: bytes | None = None  # the prefix our item carries, once stored
        self.gone: set[str] = set()  # ids this call unlisted for good
        self.evicted: list[str] = []  # live ids this call tombstoned, oldest first


class Login(Cluster):
    """The ``create`` of :class:`~pyramid_jeff.stores.memcached.MemcachedStore`."""

    def create(
        self,
        key_digest: str,
        session: Session,
        *,
        max_sessions: int,
        now_ms: int,
        idle_timeout_ms: int,
        replace_id: str | None = None,
        replace_token_digest: bytes | None = None,
        evict: bool = True,
    ) -> list[str]:
        """Store ``session`` and list it; returns the ids of the live sessions it ended
        (the replaced one, then the evicted ones, oldest first).

        ``gets`` index + marker + cutoff (+ the replaced session), ``add`` the session
        item, ``cas`` the index to list it: 3 round trips (the first login of a key also
        ``add``s the marker, the first on a server the cutoff; about once a month a login
        extends the marker's life with a ``cas``). A session item exists before the index
        lists it, but its token is handed out only once it is listed, so no usable
        session is ever unlisted; the marker then follows the index's generation (a
        write only when it differs). Replacing a session adds a ``cas`` that empties it.
        When the index lists ``max_sessions``: one ``gets`` of the key's items, a
        ``delete`` of the dead ones (tombstones included), a ``cas`` tombstone per
        evicted one, all *before* the index forgets them (so a failure between the two
        leaves a listed dead entry, never an unlisted live session; the price: a login
        that then fails may already have evicted the oldest session it was making room
        for). With ``evict=False``, a key still full of live sessions raises
        :class:`~pyramid_jeff.TooManySessions` after that read, having written nothing
        (unless a concurrent login made it full after this one had ended the replaced
        session).
        """
        node = self.node_for(key_digest)
        replace_name = None if replace_id is None else self.item_key(key_digest, replace_id)
        carried = Carried(replace_id, replace_name, replace_token_digest)
        item_name = self.item_key(key_digest, session.id)
        login = _Progress(node, key_digest, session, item_name, carried, now_ms)
        try:
            for attempt in range(CAS_ATTEMPTS):
                if attempt:
                    backoff(attempt)
                if self._login_once(
                    login, max_sessions=max_sessions, now_ms=now_ms,
                    idle_timeout_ms=idle_timeout_ms, evict=evict,
                ):  # fmt: skip
                    return carried.ended + login.evicted
            raise contention("login")
        except BaseException:
            if login.added is not None:
                self._discard(node, item_name)
            raise

    def _login_once(
        self, login: _Progress, *, max_sessions: int, now_ms: int, idle_timeout_ms: int,
        evict: bool,
    ) -> bool:  # fmt: skip
        """One attempt of a login, from its read; ``False`` when a concurrent writer
        changed what it read (read everything again)."""
        node, key_digest, session = login.node, login.key_digest, login.session
        got, index, marker, read = self._read_index(node, key_digest, *login.carried.names())
        cutoff = self._login_cutoff(node, read)
        if cutoff is None:
            return False  # the cutoff was written by someone else meanwhile: read it
        gen, entries, room = self._plan_login(
            login, got, index, cutoff,
            max_sessions=max_sessions, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
            evict=evict,
        )  # fmt: skip

        # 3. End what must end, all *before* the index forgets it.
        if not self._end_carried(node, login.carried, login.gone):
            return False  # touched meanwhile: read it again
        if room is not None:
            kept = self._make_room(node, room, login.gone, login.evicted, now_ms)
            if kept is None:
                return False  # a victim was touched meanwhile: read everything again
            entries = kept

        # 4. Our session, stored before it is listed: its token is handed out only once
        # it is listed, so an unlisted session is never usable.
        self._store_item(login, gen + (cutoff.epoch or b""))

        # 5. List it; the marker follows the index (and outlives its sessions).
        entries.append([session.id, session.created_ms, session.expires_ms])
        if not self._write_index(node, key_digest, index, gen, entries, now_ms):
            return False
        # False: the index was lost and rebuilt meanwhile: list our session again.
        return self._follow(node, key_digest, marker, gen, max(e[2] for e in entries), now_ms)

    def _plan_login(
        self,
        login: _Progress,
        got: dict[str, tuple[Any, Any]],
        index: Index,
        cutoff: Cutoff,
        *,
        max_sessions: int,
        now_ms: int,
        idle_timeout_ms: int,
        evict: bool,
    ) -> _Plan:
        """Steps 1 and 2 of a login: its generation, the entries that stay listed and
        the room to make at the cap (see :mod:`.room`)."""
        # 1. The generation is the index's; an index that is missing or unreadable
        # starts a new one (see :mod:`.records`).
        if index.gen is not None:
            gen, entries = index.gen, index.entries
        else:
            gen, entries = secrets.token_bytes(GEN_BYTES), []
        # 2. The carried session makes room; then the dead, then the oldest live ones.
        hit = login.carried.check(got, gen, cutoff, now_ms, idle_timeout_ms)
        entries = [e for e in entries if e[0] not in login.gone and e[0] != hit]
        if len(entries) < max_sessions:
            return gen, entries, None
        names = {e[0]: self.item_key(login.key_digest, e[0]) for e in entries}
        room = plan_room(
            entries, names, self._gets(login.node, list(names.values())), login.session.key,
            gen, cutoff,
            max_sessions=max_sessions, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
        )  # fmt: skip
        if room.victims and not evict:
            raise TooManySessions()
        return gen, entries, room

    def _login_cutoff(self, node: Node, cutoff: Cutoff) -> Cutoff | None:
        """The server's cutoff as read, or when it is missing or unreadable (a new
        server, or memcached evicted it), a written one of a new epoch, which ends every
        session the server holds. ``None`` if another writer got there first."""
        if cutoff.epoch is not None:
            return cutoff
        log.warning(
            "memcached: no revoke-everyone cutoff on %s (a new server, or evicted): "
            "a new epoch ends every session it held",
            node.name,
        )
        fresh = Cutoff(True, None, secrets.token_bytes(EPOCH_BYTES), NO_CUTOFF)
        if self._write_cutoff(node, cutoff, fresh):
            return fresh
        return None

    def _end_carried(self, node: Node, carried: Carried, gone: set[str]) -> bool:
        """Delete the carried session if it was found with its token (its item
        emptied, as a logout does); ``False`` if it was touched meanwhile."""
        if not carried.pending or carried.name is None or carried.id is None:
            return True
        result = self._cas(node, carried.name, TOMBSTONE, carried.cas, TOMBSTONE_TTL)
        if result is False:
            return False
        if result and carried.live:
            carried.ended = [carried.id]  # None: ended by someone else meanwhile
        carried.pending = False
        gone.add(carried.id)
        return True

    def _make_room(
        self,
        node: Node,
        room: Room,
        gone: set[str],
        evicted: list[str],
        now_ms: int,
    ) -> list[list[Any]] | None:
        """Delete the dead; turn the victims into "evicted" tombstones, still listed
        (their browsers can be told, and the next login at the cap drops them). Adds to
        ``gone`` and ``evicted``; the entries to keep, or ``None`` if a victim changed
        meanwhile. All this happens before the index forgets them (see :meth:`create`)."""
        self._delete_many(node, list(room.doomed.values()))
        gone.update(room.dropped, room.doomed)
        for session_id, name, cas, stored in room.victims:
            value, exptime = tombstone_item(room.prefix, stored, "evicted", now_ms)
            result = self._cas(node, name, value, cas, exptime)
            if result is False:
                return None
            if result:
                evicted.append(session_id)  # None: ended by someone else meanwhile
        return room.entries

    def _store_item(self, login: _Progress, prefix: bytes) -> None:
        """Store our session's item with ``prefix`` (generation and epoch), unless it
        carries it already."""
        if login.added == prefix:
            return
        value = prefix + login.record
        if login.added is None:
            if not self._add(login.node, login.item_name, value, login.item_exptime):
                raise StoreUnavailable("memcached: a session id is already taken")
        else:  # a new generation (or epoch) began meanwhile: our item follows it
            self._set(login.node, login.item_name, value, login.item_exptime)
        login.added = prefix

    def _discard(self, node: Node, name: str) -> None:
        """Best effort: remove our own unlisted item after a failed login."""
        # Unlisted, its token never handed out: if this fails too, it expires unused.
        with contextlib.suppress(StoreUnavailable):
            node.run("delete", lambda c: c.delete(name, noreply=False))

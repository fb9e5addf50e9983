"""The items of a store and how their values are laid out.

Per session key (``<p>`` is the key prefix, ``<kd>`` the key digest)::

    <p>s:<kd>:<session id>  the session: generation (8 bytes) + epoch (8 bytes) +
                            pack_record(session); a tombstone's record has its reason
                            ("revoked", "evicted"); b"" is a logout's empty item
    <p>k:<kd>               the index: msgpack [generation, [[id, created_ms, expires_ms], ...]]
    <p>g:<kd>               the marker: generation (8 bytes) + max expires_ms (ASCII)

and on every server::

    <p>everyone             the cutoff: epoch (8 bytes) + ms (ASCII); sessions of that
                            epoch created at or before it are dead

A session counts only while its generation is the marker's and its epoch the cutoff's
(:func:`is_current`). The marker follows the index's generation: an index that is missing
or unreadable is replaced by one of a new generation, which ends every session the
lost one listed, so no session is ever beyond the reach of ``revoke_all``.

Lifetimes: a session item lives until its session's ``expires_ms`` (plus a second), a
tombstone until its own (shorter) ``expires_ms``, the marker and the index at least
until the latest of them (the marker :data:`MARKER_SLACK_MS` more, so it is rewritten
about once a month per key). They are computed from the caller's clock, like the
Redis store's TTL (see :func:`exptime_for`).
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

import msgpack

from ...session import Session, pack_record, unpack_record

log = logging.getLogger(__package__)

GEN_BYTES = 8
EPOCH_BYTES = 8
# An item's value starts with its key's generation, then its server's epoch.
PREFIX_BYTES = GEN_BYTES + EPOCH_BYTES
# The cutoff of an epoch nobody revoked everyone in.
NO_CUTOFF = -1
# The item of a session ended without a tombstone (a logout, a rotation): read as none.
# Every end of a session is a ``cas`` on its item, so a session ended by two concurrent
# calls is counted by the one whose ``cas`` won.
TOMBSTONE = b""
# Long enough for a concurrent touch to find it (its cas fails either way), short
# enough not to fill memory with ended sessions.
TOMBSTONE_TTL = 10
# The marker outlives the latest session by this much, so it is rewritten rarely.
MARKER_SLACK_MS = 30 * 24 * 3600 * 1000
# memcached reads an exptime above this as an absolute Unix time.
MAX_RELATIVE_EXPTIME = 30 * 24 * 3600


def exptime_for(ttl_ms: int) -> int:
    """A memcached exptime at least ``ttl_ms`` away (never 0, which means "forever").

    Above 30 days memcached takes an absolute Unix time, computed from this machine's
    clock (a memcached host whose clock runs ahead shortens it by the difference)."""
    seconds = max(-(-ttl_ms // 1000), 1) + 1  # rounded up, plus memcached's 1 s granularity
    if seconds > MAX_RELATIVE_EXPTIME:
        return int(time.time()) + seconds
    return seconds


class Index(NamedTuple):
    present: bool  # an item is stored (maybe unreadable): write it back with cas
    cas: Any
    gen: bytes | None  # None: unreadable
    entries: list[list[Any]]  # [session id, created_ms, expires_ms]


class Marker(NamedTuple):
    present: bool
    cas: Any
    gen: bytes | None  # None: missing or unreadable
    max_expires_ms: int


def parse_index(got: dict[str, tuple[Any, Any]], name: str) -> Index:
    value, cas = got.get(name, (None, None))
    if value is None:
        return Index(False, None, None, [])
    try:
        gen, entries = msgpack.unpackb(value, raw=False)
        if not isinstance(gen, bytes) or len(gen) != GEN_BYTES:
            raise ValueError("bad generation")
        checked = []
        for entry in entries:
            session_id, created_ms, expires_ms = entry
            if not isinstance(session_id, str):
                raise ValueError("bad session id")
            checked.append([session_id, int(created_ms), int(expires_ms)])
        return Index(True, cas, gen, checked)
    except Exception as exc:  # foreign or corrupt data: overwritten by the next writer
        log.warning("unreadable memcached session index %s: %s", name, exc)
        return Index(True, cas, None, [])


def parse_marker(got: dict[str, tuple[Any, Any]], name: str) -> Marker:
    value, cas = got.get(name, (None, None))
    if value is None:
        return Marker(False, None, None, 0)
    try:
        return Marker(True, cas, bytes(value[:GEN_BYTES]), int(value[GEN_BYTES:]))
    except ValueError:
        return Marker(True, cas, None, 0)


def marker_value(gen: bytes, max_expires_ms: int) -> bytes:
    return gen + str(max_expires_ms).encode("ascii")


def index_value(gen: bytes, entries: list[list[Any]]) -> bytes:
    packed: bytes = msgpack.packb([gen, entries], use_bin_type=True)
    return packed


def decode(session_id: str, value: bytes) -> Session | None:
    """The session (or stored tombstone) in an item value, or ``None`` for a logout's
    empty item or unreadable data."""
    if len(value) <= PREFIX_BYTES:
        return None
    try:
        return unpack_record(session_id, value[PREFIX_BYTES:])
    except ValueError:
        return None


class Cutoff(NamedTuple):
    """A server's revoke-everyone cutoff, read by every operation of its keys in the
    command it already sends.

    The item has no expiry, but memcached may still evict it (without ``-M``), and a
    server may be new, restarted or flushed. A missing cutoff must never bring back the
    sessions it ended, so it fails closed: each server's cutoff carries a random
    *epoch*, copied into every session item stored there, and a session counts only
    while its epoch is the cutoff's. A missing (or unreadable) cutoff matches no session
    (``get`` gives ``None``, ``touch`` ``False``, the others count them dead), and the
    next login on that server (or ``revoke_everyone``) writes one of a new epoch, which
    every session stored before then lacks. So a lost cutoff logs out the users of that
    server, as a restart would; logins in flight meanwhile either join the new epoch or
    are lost too. No clock is involved in this: concurrent logins of a new server all
    count. Read by every verification of the server, the item sits at the busy end of
    memcached's LRU.
    """

    present: bool
    cas: Any
    epoch: bytes | None  # None: missing or unreadable, so no session of the server counts
    ms: int  # sessions of this epoch created at or before it are dead


def parse_cutoff(value: Any, cas: Any = None) -> Cutoff:
    if value is None:
        return Cutoff(False, cas, None, NO_CUTOFF)
    try:
        if len(value) <= EPOCH_BYTES:
            raise ValueError("too short")
        return Cutoff(True, cas, bytes(value[:EPOCH_BYTES]), int(value[EPOCH_BYTES:]))
    except ValueError:
        return Cutoff(True, cas, None, NO_CUTOFF)


def cutoff_value(epoch: bytes, ms: int) -> bytes:
    return epoch + str(ms).encode("ascii")


def is_current(value: bytes, gen: bytes | None, cutoff: Cutoff) -> bool:
    """Whether an item is of its key's generation ``gen`` and its server's epoch."""
    return (
        gen is not None
        and cutoff.epoch is not None
        and value[:GEN_BYTES] == gen
        and value[GEN_BYTES:PREFIX_BYTES] == cutoff.epoch
    )


def as_shown(stored: Session, current: bool, cutoff: Cutoff) -> Session | None:
    """What ``get`` and ``list`` give of a decoded item: a stored tombstone as it is (it
    is dead whatever else holds); a session that is not ``current`` (of an ended
    generation or epoch) not at all; one that ``revoke_everyone`` ended as a
    ``"revoked"`` tombstone."""
    if stored.ended is not None:
        return stored
    if not current:
        return None
    if stored.created_ms <= cutoff.ms:
        return stored.tombstone("revoked", cutoff.ms)
    return stored


def tombstone_item(prefix: bytes, stored: Session, reason: str, now_ms: int) -> tuple[bytes, int]:
    """The item value and exptime of ``stored`` turned into a tombstone (an evicted
    session, or one an operator revoked). It is rewritten in place and stays listed, so
    that ``get`` and ``list`` give it whatever the generation and the cutoff (it is dead
    either way); ``touch`` never changes it; a login at the cap deletes it."""
    tomb = stored.tombstone(reason, now_ms)
    return prefix + pack_record(tomb), exptime_for(tomb.expires_ms - now_ms)

"""The :class:`Session` record and its msgpack codec.

Stored form (a msgpack array, strings as raw bytes)::

    [1, created_ms, last_seen_ms, expires_ms, token_digest, key, ip, user_agent, meta]

A *tombstone* (a session an operator revoked or a newer login evicted, kept for a while
so that its browser can be told why it was logged out) has the reason as a tenth item::

    [1, ..., meta, b"revoked" | b"evicted"]

Redis Lua scripts read and rewrite the first five items with ``cmsgpack``, which
rejects msgpack *bin* values and does not preserve every msgpack type. So the array is
packed in the old raw-string format (no bin), and ``meta`` is packed separately with
the modern format and stored as an opaque string that Lua never decodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    from .credentials import Credential

RECORD_VERSION = 1
MAX_META_BYTES = 4096
MAX_USER_AGENT = 256  # characters kept: enough to tell devices apart, bounded in the store
# Why a stored session ended before its time (a tombstone's reason).
ENDED_REASONS = ("revoked", "evicted")
# A tombstone is kept at most this long (and never past the session's own expiry): long
# enough for a browser to come back and be told, short enough to cost little.
TOMBSTONE_MS = 7 * 24 * 3600 * 1000
MAX_LIFETIME = 400 * 24 * 3600  # seconds: browsers cap cookie lifetimes at 400 days

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_PACKED_EMPTY_META: bytes = msgpack.packb({})


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class Session:
    """One login: "this browser is logged in as ``key``".

    ``id`` is a public handle (safe to show and to put in a form; useless as a
    credential). Times are kept to the millisecond; the ``*_at`` properties give aware
    UTC datetimes. ``meta`` is a copy of the dict given to ``remember()``; it is kept
    packed, so a request that does not look at it does not pay for decoding it.
    """

    key: str
    id: str
    created_ms: int
    last_seen_ms: int
    expires_ms: int
    ip: str | None = None
    user_agent: str | None = None
    packed_meta: bytes = field(default=_PACKED_EMPTY_META, repr=False, compare=False)
    token_digest: bytes = field(default=b"", repr=False, compare=False)
    # "revoked" or "evicted" for a tombstone: a session that ended, kept to tell why.
    ended: str | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The dict given to ``remember()``: a fresh copy at every access (changing it
        changes nothing stored)."""
        return unpack_meta(self.packed_meta)

    def __json__(self, request: object = None) -> dict[str, Any]:
        """The public fields, for ``renderer="json"``: never the token digest."""
        return {
            "key": self.key,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "ip": self.ip,
            "user_agent": self.user_agent,
            "meta": self.meta,
        }

    @property
    def created_at(self) -> datetime:
        return from_ms(self.created_ms)

    @property
    def last_seen(self) -> datetime:
        return from_ms(self.last_seen_ms)

    @property
    def expires_at(self) -> datetime:
        """End of the absolute lifetime (an idle timeout may end the session earlier)."""
        return from_ms(self.expires_ms)

    def is_live(self, now_ms: int, idle_timeout_ms: int) -> bool:
        if self.ended is not None or now_ms >= self.expires_ms:
            return False
        return not (idle_timeout_ms and now_ms >= self.last_seen_ms + idle_timeout_ms)

    def seen_at(self, now_ms: int) -> Session:
        return replace(self, last_seen_ms=now_ms)

    def end_reason(self, now_ms: int, idle_timeout_ms: int) -> str | None:
        """Why this session is not live: ``"revoked"``, ``"evicted"``, ``"expired"``,
        ``"idle"``; ``None`` while it is live."""
        if self.ended is not None:
            return self.ended
        if now_ms >= self.expires_ms:
            return "expired"
        if idle_timeout_ms and now_ms >= self.last_seen_ms + idle_timeout_ms:
            return "idle"
        return None

    def tombstone(self, reason: str, now_ms: int) -> Session:
        """This session ended for ``reason``, kept until :data:`TOMBSTONE_MS` from now
        (at most until its own expiry)."""
        return replace(self, ended=reason, expires_ms=min(self.expires_ms, now_ms + TOMBSTONE_MS))


def check_max_age(max_age: object) -> int:
    """A session lifetime in whole seconds, 1 to 400 days; else ``TypeError``/``ValueError``."""
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise TypeError(f"max_age must be an int of seconds, not {type(max_age).__name__}")
    if not 1 <= max_age <= MAX_LIFETIME:
        raise ValueError(f"max_age must be from 1 to {MAX_LIFETIME} seconds, not {max_age}")
    return max_age


def new_session(
    credential: Credential,
    key: str,
    now_ms: int,
    lifetime_ms: int,
    ip: str | None,
    user_agent: str | None,
    packed_meta: bytes,
) -> Session:
    """The record of a login made now, for the session ``credential`` names."""
    return Session(
        key=key,
        id=credential.session_id,
        created_ms=now_ms,
        last_seen_ms=now_ms,
        expires_ms=now_ms + lifetime_ms,
        # NUL never reaches a store: PostgreSQL text cannot hold it.
        ip=(ip or "").replace("\x00", "") or None,
        user_agent=(user_agent or "").replace("\x00", "")[:MAX_USER_AGENT] or None,
        packed_meta=packed_meta,
        token_digest=credential.token_digest(),
    )


def pack_meta(meta: Mapping[str, Any] | None) -> bytes:
    """Validate and pack ``meta``; raise ``ValueError``/``TypeError`` when it cannot be kept."""
    if meta is None:
        return _PACKED_EMPTY_META
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
    try:
        packed = bytes(msgpack.packb(dict(meta)))
        # What packs must also read back (e.g. tuple keys pack but cannot be unpacked).
        unpack_meta(packed)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"meta must be msgpack-serialisable: {exc}") from None
    if len(packed) > MAX_META_BYTES:
        raise ValueError(f"meta must pack to at most {MAX_META_BYTES} bytes, not {len(packed)}")
    return packed


def unpack_meta(packed: bytes) -> dict[str, Any]:
    if packed == _PACKED_EMPTY_META:
        return {}
    meta: dict[str, Any] = msgpack.unpackb(packed, strict_map_key=False)
    return meta


def pack_record(session: Session) -> bytes:
    record = [
        RECORD_VERSION,
        session.created_ms,
        session.last_seen_ms,
        session.expires_ms,
        session.token_digest,
        session.key.encode("utf-8"),
        (session.ip or "").encode("utf-8"),
        (session.user_agent or "").encode("utf-8"),
        session.packed_meta,
    ]
    if session.ended is not None:
        record.append(session.ended.encode("ascii"))
    packed: bytes = msgpack.packb(record, use_bin_type=False)
    return packed


def unpack_record(session_id: str, data: bytes) -> Session:
    """Decode a stored record; raise ``ValueError`` when it is not one of ours."""
    try:
        record = msgpack.unpackb(data, raw=True)
        version, created, last_seen, expires, digest, key, ip, agent, meta, *rest = record
        if version != RECORD_VERSION:
            raise ValueError(f"unknown record version {version!r}")
        ended = None
        if rest:
            (reason,) = rest
            ended = reason.decode("ascii")
            if ended not in ENDED_REASONS:
                raise ValueError(f"unknown end reason {ended!r}")
        return Session(
            key=key.decode("utf-8"),
            id=session_id,
            created_ms=int(created),
            last_seen_ms=int(last_seen),
            expires_ms=int(expires),
            ip=ip.decode("utf-8") or None,
            user_agent=agent.decode("utf-8") or None,
            packed_meta=bytes(meta),
            token_digest=bytes(digest),
            ended=ended,
        )
    except ValueError:
        raise
    except Exception as exc:  # msgpack and unpacking errors of every kind
        raise ValueError(f"corrupt session record: {exc}") from None

"""The :class:`Session` record and its msgpack codec.

Stored form (a msgpack array, strings as raw bytes)::

    [1, created_ms, last_seen_ms, expires_ms, token_digest, key, ip, user_agent, meta]

Redis Lua scripts read and rewrite the first five items with ``cmsgpack``, which
rejects msgpack *bin* values and does not preserve every msgpack type. So the array is
packed in the old raw-string format (no bin), and ``meta`` is packed separately with
the modern format and stored as an opaque string that Lua never decodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack

RECORD_VERSION = 1
MAX_META_BYTES = 4096
MAX_USER_AGENT = 256  # characters kept: enough to tell devices apart, bounded in the store

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
        if now_ms >= self.expires_ms:
            return False
        return not (idle_timeout_ms and now_ms >= self.last_seen_ms + idle_timeout_ms)

    def seen_at(self, now_ms: int) -> Session:
        return replace(self, last_seen_ms=now_ms)


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
    packed: bytes = msgpack.packb(record, use_bin_type=False)
    return packed


def unpack_record(session_id: str, data: bytes) -> Session:
    """Decode a stored record; raise ``ValueError`` when it is not one of ours."""
    try:
        record = msgpack.unpackb(data, raw=True)
        version, created, last_seen, expires, digest, key, ip, agent, meta = record
        if version != RECORD_VERSION:
            raise ValueError(f"unknown record version {version!r}")
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
        )
    except ValueError:
        raise
    except Exception as exc:  # msgpack and unpacking errors of every kind
        raise ValueError(f"corrupt session record: {exc}") from None

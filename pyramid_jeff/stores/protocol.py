"""The store protocol: what a backend must do for the manager.

A store keeps, for each key digest, a set of sessions addressed by session id. Every
method is one atomic operation in the backend: no caller ever reads a whole list,
changes it and writes it back (the race the Go jeff admits). Liveness is decided by the
caller's clock (``now_ms``) and idle timeout, so every store agrees on it.

Stores raise :class:`pyramid_jeff.StoreUnavailable` when the backend cannot answer.

*Tombstones*: a session an operator revoked (``revoke(..., tombstone=True)``,
``revoke_all``) or a login evicted is not deleted but rewritten as
``session.tombstone(reason, now_ms)`` (``ended`` set, kept at most
:data:`~pyramid_jeff.session.TOMBSTONE_MS`), so that its browser can be told why it was
logged out. A tombstone is dead: never live, never touched, never counted, first to go
when a key is full. A logout and a rotation (``token_digest`` given) delete outright.

*Everyone*: ``revoke_everyone(now_ms)`` keeps one cutoff per store; from then on every
session created at or before it is dead everywhere (``get`` and ``list`` give it as a
``"revoked"`` tombstone or not at all; nothing counts it as live), and ``get`` still costs
one round trip.

A store that waits on a network may have a ``request_budget`` attribute: the seconds one
request may spend waiting on it in total (see :mod:`pyramid_jeff.deadline`); the tween
opens that budget around each request.
"""

from __future__ import annotations

import builtins
from typing import Protocol, runtime_checkable

from ..session import Session

# The optional operator methods a store may also have (``pjeff sweep`` and ``pjeff stats``):
#   sweep(now_ms: int, idle_timeout_ms: int) -> int   drop dead sessions, say how many
#   stats() -> dict[str, int | str]                   what the backend holds, cheaply


@runtime_checkable
class SessionStore(Protocol):
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
        """Add ``session`` under ``key_digest``, atomically with its housekeeping.

        In the same atomic step: delete session ``replace_id`` if its token digest
        equals ``replace_token_digest`` (the login rotates away the session the browser
        carried); when the key holds ``max_sessions`` sessions, drop the dead ones
        (tombstones included) and then turn the oldest live ones (by creation time, then
        id) into ``"evicted"`` tombstones until the new one fits. With ``evict=False``,
        raise :class:`~pyramid_jeff.TooManySessions` instead, having written nothing.
        Returns the ids of the live sessions it ended: the replaced one, then the
        evicted ones, oldest first. Keep the data at least until ``session.expires_ms``.
        """
        ...

    def get(self, key_digest: str, session_id: str) -> Session | None:
        """The stored session, dead or alive (a tombstone too), or ``None``: one read."""
        ...

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        """Set ``last_seen`` of an existing session to ``last_seen_ms`` if that is at least
        ``min_interval_ms`` later than the stored one (so concurrent requests write once);
        never create a session nor change a tombstone. ``False`` if the session is gone
        or a tombstone."""
        ...

    def list(self, key_digest: str) -> list[Session]:
        """Every stored session of the key, dead or alive, in any order."""
        ...

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
        """End one session; ``True`` if it was live. With ``token_digest``, only if the
        session's token digest is that one (a logout or rotation proves possession);
        with ``key``, only if it is a session of that key (two keys' digests may
        collide). With ``tombstone``, a live session becomes a ``"revoked"`` tombstone
        (an operator's revocation), else it is deleted."""
        ...

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> builtins.list[str]:
        """End every session of the key but ``keep``: the live ones become ``"revoked"``
        tombstones, the dead ones may be deleted. Returns the ids of the live ones it
        ended. With ``key``, only sessions of that key."""
        ...

    def revoke_everyone(self, *, now_ms: int) -> None:
        """End every session of every key created at or before ``now_ms``, without a
        scan; a later call with an earlier time changes nothing."""
        ...

    def close(self) -> None:
        """Release connections (a no-op where there are none)."""
        ...


# What a store must have, in the order a missing one is named at start-up.
STORE_METHODS = (
    "create",
    "get",
    "touch",
    "list",
    "revoke",
    "revoke_all",
    "revoke_everyone",
    "close",
)

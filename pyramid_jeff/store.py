"""The store protocol: what a backend must do for the manager.

A store keeps, for each key digest, a set of sessions addressed by session id. Every
method is one atomic operation in the backend: no caller ever reads a whole list,
changes it and writes it back (the race the Go jeff admits). Liveness is decided by the
caller's clock (``now_ms``) and idle timeout, so every store agrees on it.

Stores raise :class:`pyramid_jeff.StoreUnavailable` when the backend cannot answer.

A store that waits on a network may have a ``request_budget`` attribute: the seconds one
request may spend waiting on it in total (see :mod:`pyramid_jeff.deadline`); the tween
opens that budget around each request.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .session import Session


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
    ) -> int:
        """Add ``session`` under ``key_digest``, atomically with its housekeeping.

        In the same atomic step: drop session ``replace_id`` if its token digest equals
        ``replace_token_digest`` (the login rotates away the session the browser
        carried); when the key holds ``max_sessions`` sessions, drop the dead ones and
        then the oldest live ones (by creation time) until the new one fits. Returns
        how many live sessions were evicted. Keep the data at least until
        ``session.expires_ms``.
        """
        ...

    def get(self, key_digest: str, session_id: str) -> Session | None:
        """The stored session, dead or alive, or ``None``: one read."""
        ...

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        """Set ``last_seen`` of an existing session to ``last_seen_ms`` if that is at least
        ``min_interval_ms`` later than the stored one (so concurrent requests write once);
        never create a session. ``False`` if the session is gone."""
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
    ) -> bool:
        """Delete one session; ``True`` if it was live. With ``token_digest``, only if the
        session's token digest is that one (a logout or rotation proves possession);
        with ``key``, only if it is a session of that key (two keys' digests may
        collide)."""
        ...

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> int:
        """Delete every session of the key but ``keep``; return how many were live. With
        ``key``, only sessions of that key."""
        ...

    def close(self) -> None:
        """Release connections (a no-op where there are none)."""
        ...

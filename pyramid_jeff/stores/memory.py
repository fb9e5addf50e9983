"""The embedded store: sessions in this process's memory.

For development, tests and single-process deployments: sessions vanish on restart and
are not shared between worker processes (use Redis for that). Same semantics as the
Redis store, under one lock. Dead sessions are dropped a few at a time by every write
(:mod:`.memory_sweep`).
"""

from __future__ import annotations

import builtins
import threading

from ..errors import TooManySessions
from ..session import Session
from .memory_sweep import SweptSessions, death_ms


class MemoryStore(SweptSessions):
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

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
        ended: list[str] = []
        with self._lock:
            garbage = self._sweep(now_ms)
            sessions = self._sessions.setdefault(key_digest, {})
            replaced = sessions.get(replace_id) if replace_id is not None else None
            if replaced is not None and replaced.token_digest != replace_token_digest:
                replaced = None
            # Only sessions of this key count and are evicted (the digests of two keys
            # could collide), as in the Redis scripts.
            mine = [s for s in sessions.values() if s.key == session.key and s is not replaced]
            victims: list[Session] = []
            if len(mine) >= max_sessions:
                mine = [s for s in mine if self._live(s, now_ms, idle_timeout_ms)]
                victims = sorted(mine, key=lambda s: (s.created_ms, s.id))
                victims = victims[: max(0, len(mine) - max_sessions + 1)]
                if victims and not evict:
                    raise TooManySessions()
                # Make room: the dead go, the evicted stay as tombstones.
                for stored in [s for s in sessions.values() if s.key == session.key]:
                    if stored is not replaced and not self._live(stored, now_ms, idle_timeout_ms):
                        del sessions[stored.id]
            if replaced is not None:
                del sessions[replaced.id]
                if self._live(replaced, now_ms, idle_timeout_ms):
                    ended.append(replaced.id)
            for victim in victims:
                sessions[victim.id] = victim.tombstone("evicted", now_ms)
                ended.append(victim.id)
            sessions[session.id] = session
            idle_ms = self._merge_idle(key_digest, idle_timeout_ms)
            self._schedule(key_digest, death_ms(session, idle_ms))
        del garbage  # freed here, outside the lock
        return ended

    def get(self, key_digest: str, session_id: str) -> Session | None:
        with self._lock:
            sessions = self._sessions.get(key_digest)
            stored = None if sessions is None else sessions.get(session_id)
            return None if stored is None else self._cut(stored)

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        # No sweep here: ``last_seen_ms`` is a value to store, not a clock to trust.
        with self._lock:
            sessions = self._sessions.get(key_digest)
            if sessions is None:
                return False
            stored = sessions.get(session_id)
            if stored is None or self._cut(stored).ended is not None:
                return False
            if last_seen_ms >= stored.last_seen_ms + max(min_interval_ms, 1):
                sessions[session_id] = stored.seen_at(last_seen_ms)
            return True

    def list(self, key_digest: str) -> list[Session]:
        with self._lock:
            return [self._cut(s) for s in self._sessions.get(key_digest, {}).values()]

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
        with self._lock:
            garbage = self._sweep(now_ms)
            sessions = self._sessions.get(key_digest, {})
            stored = sessions.get(session_id)
            if (
                stored is None
                or (token_digest is not None and stored.token_digest != token_digest)
                or (key is not None and stored.key != key)
            ):
                return False
            live = self._live(stored, now_ms, idle_timeout_ms)
            if tombstone and live:
                sessions[session_id] = stored.tombstone("revoked", now_ms)
            elif tombstone and self._cut(stored).ended is not None:
                pass  # already a tombstone: it keeps telling its browser why
            else:
                del sessions[session_id]
                if not sessions:
                    self._forget_key(key_digest)
        del garbage
        return live

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> builtins.list[str]:
        ended: list[str] = []
        with self._lock:
            garbage = self._sweep(now_ms)
            sessions = self._sessions.get(key_digest, {})
            for stored in list(sessions.values()):
                if stored.id == keep or (key is not None and stored.key != key):
                    continue
                if self._live(stored, now_ms, idle_timeout_ms):
                    sessions[stored.id] = stored.tombstone("revoked", now_ms)
                    ended.append(stored.id)
                elif self._cut(stored).ended is None:
                    del sessions[stored.id]
            if not sessions:
                self._forget_key(key_digest)
        del garbage
        return ended

    def revoke_everyone(self, *, now_ms: int) -> None:
        with self._lock:
            self._everyone_ms = max(self._everyone_ms, now_ms)

    def sweep(self, now_ms: int, idle_timeout_ms: int) -> int:
        """Dead sessions are dropped a few at a time by every write: nothing to do."""
        return 0

    def stats(self) -> dict[str, int | str]:
        with self._lock:
            return {
                "backend": "memory",
                "keys": len(self._sessions),
                "records": sum(len(s) for s in self._sessions.values()),
                "revoked_everyone_before_ms": self._everyone_ms,
            }

    def _live(self, stored: Session, now_ms: int, idle_timeout_ms: int) -> bool:
        return stored.created_ms > self._everyone_ms and stored.is_live(now_ms, idle_timeout_ms)

    def close(self) -> None:
        with self._lock:
            # Swapped out under the lock, freed after it: a million sessions take a
            # while to deallocate.
            garbage = self._clear()
        del garbage

"""The embedded store: sessions in this process's memory.

For development, tests and single-process deployments: sessions vanish on restart and
are not shared between worker processes (use Redis for that). Same semantics as the
Redis store, under one lock.
"""

from __future__ import annotations

import threading

from .session import Session

SWEEP_INTERVAL_MS = 60_000


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, dict[str, Session]] = {}
        # Per key, when its last absolute expiry passes (what a Redis key TTL does).
        self._key_expires: dict[str, int] = {}
        self._next_sweep = 0

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
        evicted = 0
        with self._lock:
            self._sweep_if_due(now_ms)
            sessions = self._sessions.setdefault(key_digest, {})
            if replace_id is not None:
                old = sessions.get(replace_id)
                if old is not None and old.token_digest == replace_token_digest:
                    del sessions[replace_id]
            if len(sessions) >= max_sessions:
                for session_id, stored in list(sessions.items()):
                    if not stored.is_live(now_ms, idle_timeout_ms):
                        del sessions[session_id]
                if len(sessions) >= max_sessions:
                    oldest = sorted(sessions.values(), key=lambda s: (s.created_ms, s.id))
                    for victim in oldest[: len(sessions) - max_sessions + 1]:
                        del sessions[victim.id]
                        evicted += 1
            sessions[session.id] = session
            if session.expires_ms > self._key_expires.get(key_digest, 0):
                self._key_expires[key_digest] = session.expires_ms
        return evicted

    def get(self, key_digest: str, session_id: str) -> Session | None:
        with self._lock:
            sessions = self._sessions.get(key_digest)
            return None if sessions is None else sessions.get(session_id)

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        with self._lock:
            sessions = self._sessions.get(key_digest)
            stored = None if sessions is None else sessions.get(session_id)
            if stored is None or sessions is None:
                return False
            if last_seen_ms >= stored.last_seen_ms + max(min_interval_ms, 1):
                sessions[session_id] = stored.seen_at(last_seen_ms)
            return True

    def list(self, key_digest: str) -> list[Session]:
        with self._lock:
            return list(self._sessions.get(key_digest, {}).values())

    def revoke(
        self,
        key_digest: str,
        session_id: str,
        *,
        now_ms: int,
        idle_timeout_ms: int,
        token_digest: bytes | None = None,
    ) -> bool:
        with self._lock:
            sessions = self._sessions.get(key_digest, {})
            stored = sessions.get(session_id)
            if stored is None or (
                token_digest is not None and stored.token_digest != token_digest
            ):
                return False
            del sessions[session_id]
            if not sessions:
                self._forget_key(key_digest)
            return stored.is_live(now_ms, idle_timeout_ms)

    def revoke_all(
        self, key_digest: str, *, keep: str | None, now_ms: int, idle_timeout_ms: int
    ) -> int:
        with self._lock:
            sessions = self._sessions.get(key_digest, {})
            ended = [s for sid, s in sessions.items() if sid != keep]
            kept = sessions.get(keep) if keep is not None else None
            if kept is None:
                self._forget_key(key_digest)
            else:
                self._sessions[key_digest] = {kept.id: kept}
            return sum(1 for s in ended if s.is_live(now_ms, idle_timeout_ms))

    def close(self) -> None:
        with self._lock:
            self._sessions.clear()
            self._key_expires.clear()

    def _forget_key(self, key_digest: str) -> None:
        self._sessions.pop(key_digest, None)
        self._key_expires.pop(key_digest, None)

    def _sweep_if_due(self, now: int) -> None:
        # Drops keys whose every session is past its absolute expiry, at most once a
        # minute, so abandoned logins cannot grow the process without bound.
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_MS
        for key_digest, expires in list(self._key_expires.items()):
            if expires <= now:
                self._forget_key(key_digest)

"""The memory store's sessions and the bookkeeping that drops the dead ones.

Dead sessions (past their absolute lifetime or their idle timeout) are dropped a few at
a time, so that abandoned logins cannot grow the process without bound and no request
ever waits for a sweep of the whole store. Each key is filed under the second in which
one of its sessions may first die (a bucket; a heap orders the buckets); each write takes
keys only from buckets that are due, and examines at most :data:`SWEEP_BATCH` keys and
sessions. Filings are never moved: a refresh of ``last_seen`` only makes one early (the
key is examined and filed again under its new time), and a filing that no longer
matches :attr:`SweptSessions._due` is skipped.

Nothing here locks: :class:`~pyramid_jeff.stores.memory.MemoryStore` calls it under its
lock.
"""

from __future__ import annotations

import heapq
from typing import Any

from ..session import Session

# The most filings and sessions one write examines while sweeping: it bounds how long a
# sweep holds the lock (well under a millisecond). Each write adds at most one session
# and can drop hundreds of dead ones, so the dead cannot outgrow the live for long.
SWEEP_BATCH = 512
# Bucket width: a dead session is dropped at most this long after it died (liveness
# itself is always decided on read, to the millisecond). Buckets make the heap hold one
# int per second instead of one entry per key: popping a key is then a list pop.
BUCKET_MS = 1000
# Stale filings tolerated before the buckets are rebuilt from ``_due`` (amortised O(1)
# per filing; they only appear when a key's due time moves earlier, e.g. a login with a
# shorter ``max_age`` than the key's other sessions).
_COMPACT_SLACK = 4096

# What a sweep removed (sessions and emptied dicts), freed once the lock is released.
Garbage = list[Any]


def death_ms(session: Session, idle_ms: int) -> int:
    """When ``session`` stops being live with idle timeout ``idle_ms``, unless touched
    (a tombstone: when it is dropped)."""
    if session.ended is None and idle_ms and session.last_seen_ms + idle_ms < session.expires_ms:
        return session.last_seen_ms + idle_ms
    return session.expires_ms


def _swept(session: Session, now_ms: int, idle_ms: int) -> bool:
    """Dead and not worth keeping: a tombstone is kept until its own expiry."""
    if session.ended is not None:
        return now_ms >= session.expires_ms
    return not session.is_live(now_ms, idle_ms)


def _bucket(due_ms: int) -> int:
    # Rounded up, so that every key in a bucket that is due is itself due.
    return -(-due_ms // BUCKET_MS)


class SweptSessions:
    """Sessions by key digest and id, filed by when they may die, swept a batch at a
    time."""

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, Session]] = {}
        # Per key, the idle timeout its sessions are swept with: the most lenient one
        # that created them (0: none), so a sweep never drops a session that some
        # manager sharing this store still counts as live.
        self._idle_ms: dict[str, int] = {}
        # Per key, the bucket it is filed under; kept after the key's last session is
        # revoked (until that bucket comes due), so logging in and out files nothing.
        self._due: dict[str, int] = {}
        # Bucket -> keys filed there (a filing is valid only while it equals
        # ``_due[key]``), and a heap of the buckets, earliest first.
        self._buckets: dict[int, list[str]] = {}
        self._bucket_heap: list[int] = []
        self._filings = 0  # valid and stale filings in all buckets
        # Sessions created at or before this (revoke_everyone) are dead.
        self._everyone_ms = -1
        self.swept = 0  # dead sessions dropped by sweeps (never a live one)
        self.examined = 0  # filings and sessions the sweeps looked at

    def _cut(self, stored: Session) -> Session:
        """``stored``, as a tombstone when revoke_everyone ended it."""
        if stored.created_ms <= self._everyone_ms and stored.ended is None:
            return stored.tombstone("revoked", self._everyone_ms)
        return stored

    def _clear(self) -> Garbage:
        """Empty the store; return what it held, for the caller to free after the lock."""
        garbage: Garbage = [self._sessions, self._idle_ms, self._due, self._buckets]
        self._sessions, self._idle_ms, self._due, self._buckets = {}, {}, {}, {}
        self._bucket_heap, self._filings = [], 0
        return garbage

    def _forget_key(self, key_digest: str) -> None:
        # ``_due`` stays: the key's filing is still valid and drops it when it is due.
        self._sessions.pop(key_digest, None)
        self._idle_ms.pop(key_digest, None)

    def _merge_idle(self, key_digest: str, idle_timeout_ms: int) -> int:
        known = self._idle_ms.get(key_digest)
        if known is None:
            merged = idle_timeout_ms
        elif known == 0 or idle_timeout_ms == 0:
            merged = 0
        else:
            merged = max(known, idle_timeout_ms)
        self._idle_ms[key_digest] = merged
        return merged

    def _schedule(self, key_digest: str, due_ms: int) -> None:
        # A later due time needs no new filing: the earlier one finds the key still
        # alive and files it again under the right time.
        bucket = _bucket(due_ms)
        current = self._due.get(key_digest)
        if current is not None and current <= bucket:
            return
        self._file(key_digest, bucket)
        if self._filings > 2 * len(self._due) + _COMPACT_SLACK:
            self._rebuild()

    def _file(self, key_digest: str, bucket: int) -> None:
        self._due[key_digest] = bucket
        keys = self._buckets.get(bucket)
        if keys is None:
            keys = self._buckets[bucket] = []
            heapq.heappush(self._bucket_heap, bucket)
        keys.append(key_digest)
        self._filings += 1

    def _rebuild(self) -> None:
        self._buckets = {}
        for key_digest, bucket in self._due.items():
            self._buckets.setdefault(bucket, []).append(key_digest)
        self._bucket_heap = list(self._buckets)
        heapq.heapify(self._bucket_heap)
        self._filings = len(self._due)

    def _sweep(self, now_ms: int) -> Garbage | None:
        """Drop the dead sessions of keys filed in due buckets, examining at most
        :data:`SWEEP_BATCH` filings and sessions. Returns what was removed, for the
        caller to free once it has released the lock."""
        heap = self._bucket_heap
        if not heap or heap[0] * BUCKET_MS > now_ms:
            return None  # the common case: nothing due, one comparison
        garbage: Garbage = []
        examined = 0
        while heap and heap[0] * BUCKET_MS <= now_ms and examined < SWEEP_BATCH:
            bucket = heap[0]
            keys = self._buckets[bucket]
            while keys and examined < SWEEP_BATCH:
                key_digest = keys.pop()
                self._filings -= 1
                examined += 1 + self._sweep_key(key_digest, bucket, now_ms, garbage)
            if not keys:
                heapq.heappop(heap)
                del self._buckets[bucket]
        self.examined += examined
        return garbage

    def _sweep_key(self, key_digest: str, bucket: int, now_ms: int, garbage: Garbage) -> int:
        """Drop the dead sessions of one due key; return how many sessions it examined."""
        if self._due.get(key_digest) != bucket:
            return 0  # filed again under an earlier bucket since
        sessions = self._sessions.get(key_digest)
        if not sessions:
            del self._due[key_digest]
            self._sessions.pop(key_digest, None)
            return 0
        idle_ms = self._idle_ms.get(key_digest, 0)
        dead = [sid for sid, s in sessions.items() if _swept(self._cut(s), now_ms, idle_ms)]
        for session_id in dead:
            garbage.append(sessions.pop(session_id))
        self.swept += len(dead)
        if sessions:
            # Every remaining session is live or a kept tombstone, so its next bucket
            # is later than this one.
            next_ms = min(death_ms(s, idle_ms) for s in sessions.values())
            self._file(key_digest, _bucket(next_ms))
        else:
            del self._due[key_digest]
            self._forget_key(key_digest)
            garbage.append(sessions)
        return len(sessions) + len(dead)

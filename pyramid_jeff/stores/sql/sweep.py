"""The sweep of dead rows, explicit (:meth:`Sweeping.sweep`) or automatic: after a login has
committed, a background thread sweeps one batch of rows past their absolute lifetime (never
by idle timeout, which may differ between applications sharing the table), at most once
every :data:`AUTO_SWEEP_INTERVAL` seconds per store object: no request waits for it."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import and_, delete, or_, select, tuple_
from sqlalchemy.engine import Connection

from .connections import Connections

log = logging.getLogger(__name__)

# Seconds between two automatic sweeps of one store object, and the rows each deletes.
AUTO_SWEEP_INTERVAL = 60.0
AUTO_SWEEP_BATCH = 500


class Sweeping(Connections):
    """The store's part that deletes dead rows."""

    auto_sweep_interval: float
    auto_sweep_batch: int
    _sweep_lock: threading.Lock
    _next_auto_sweep: float  # monotonic time of the next automatic sweep
    _sweeper: threading.Thread | None

    def sweep(
        self,
        now_ms: int,
        idle_timeout_ms: int,
        *,
        batch: int = 500,
        max_batches: int | None = None,
    ) -> int:
        """Delete dead rows (expired, or idle past ``idle_timeout_ms`` when it is > 0) in
        batches of at most ``batch`` rows, each its own short transaction (so a sweep never
        holds many locks nor a long transaction); stop after ``max_batches`` batches or when
        none is left. Returns the rows deleted.

        A tombstone goes at its own (short) expiry, never for idleness: it is kept to
        tell its browser why it was logged out. The revoke_everyone cutoff never goes
        (its times are past any clock). Sessions the cutoff ended go at their own
        expiry: finding them sooner would take a scan.

        The idle rule is this caller's: applications that share a table must share their
        idle timeout (or pass the most lenient one, 0 for none)."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch!r}")
        deleted = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            count, full = self._run(lambda c: self._sweep_batch(c, now_ms, idle_timeout_ms, batch))
            deleted += count
            batches += 1
            if not full:
                break
        return deleted

    def _sweep_batch(
        self, connection: Connection, now_ms: int, idle_timeout_ms: int, batch: int
    ) -> tuple[int, bool]:
        """One batch: (rows deleted, whether the batch was full: more may be left).

        ``SELECT key_digest, session_id ... WHERE expires_ms <= ? LIMIT n`` (and, with an
        idle timeout, ``... WHERE last_seen_ms <= ? AND ended IS NULL LIMIT`` the rest),
        then one ``DELETE ... WHERE (key_digest, session_id) IN (...) AND <still dead>``."""
        c = self.table.c
        pk = (c.key_digest, c.session_id)
        expired = select(*pk).where(c.expires_ms <= now_ms).limit(batch)
        found = {tuple(row) for row in connection.execute(expired)}
        idle_dead = and_(c.last_seen_ms <= now_ms - idle_timeout_ms, c.ended.is_(None))
        if idle_timeout_ms > 0 and len(found) < batch:
            idle = select(*pk).where(idle_dead).limit(batch - len(found))
            found.update(tuple(row) for row in connection.execute(idle))
        if not found:
            return 0, False
        still_dead = c.expires_ms <= now_ms
        if idle_timeout_ms > 0:
            still_dead = or_(still_dead, idle_dead)
        # A plain read then a delete by primary key: point locks only, and the delete
        # checks again that each row is still dead (a touch may have come in between).
        stmt = delete(self.table).where(tuple_(*pk).in_(sorted(found)), still_dead)
        deleted = connection.execute(stmt).rowcount
        return deleted, len(found) >= batch

    def _maybe_auto_sweep(self, now_ms: int, idle_timeout_ms: int) -> None:
        """After a login: one batch in a background thread, at most once per interval."""
        now = time.monotonic()
        if now < self._next_auto_sweep:
            return
        with self._sweep_lock:
            if now < self._next_auto_sweep or (self._sweeper and self._sweeper.is_alive()):
                return
            self._next_auto_sweep = now + self.auto_sweep_interval
            self._sweeper = threading.Thread(
                target=self._auto_sweep,
                args=(now_ms, idle_timeout_ms),
                name="pyramid_jeff-sql-sweep",
                daemon=True,
            )
            self._sweeper.start()

    def _auto_sweep(self, now_ms: int, idle_timeout_ms: int) -> None:
        try:  # a new thread: no request budget, the store's own timeout
            self.sweep(now_ms, idle_timeout_ms, batch=self.auto_sweep_batch, max_batches=1)
        except Exception:
            log.warning("automatic sweep of dead sessions failed", exc_info=True)

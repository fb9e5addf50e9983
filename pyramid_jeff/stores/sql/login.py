"""A login (:meth:`Login.create`): one short transaction, under a per-key lock.

``BEGIN`` (SQLite ``BEGIN IMMEDIATE``, MariaDB ``START TRANSACTION``, preceded by ``SELECT
GET_LOCK(<key's lock>, <wait>)``); PostgreSQL ``SELECT pg_advisory_xact_lock(<hash of table
and key digest>)``; ``SELECT <the key's rows>, <cutoff> [FOR UPDATE]`` (the lock is on the
key's rows only, never on the cutoff's); then, decided in Python on those rows: at most one
``DELETE ... WHERE key_digest = ? AND session_id IN (...)`` (the replaced session if its
token digest matches; while the key holds max_sessions, its dead rows and tombstones) and
at most one ``UPDATE ... SET ended = 'evicted', expires_ms = LEAST(...) WHERE key_digest =
? AND session_id IN (...)`` (the oldest live sessions of this key by (created_ms,
session_id), as many as the new one needs); ``INSERT``; ``COMMIT`` (MariaDB: then ``SELECT
RELEASE_LOCK(...)``). Round trips: 4 (SQLite), 5 (PostgreSQL), 6 (MariaDB), plus one when
something is deleted and one when something is evicted. Without ``evict``, a key still
full of live sessions ends the transaction with ``ROLLBACK`` instead: nothing written,
:class:`~pyramid_jeff.TooManySessions` raised.

Locking (why a login at the cap cannot race): the read of the key's rows, the deletions
and the insert happen in one transaction that holds a per-key lock taken *before* the
read, so two logins of one key are serialised and each sees the other's row.

- PostgreSQL: ``pg_advisory_xact_lock`` on a 64-bit hash of (table, key digest), held to
  the commit (row locks alone would not stop a concurrent insert into the key's range).
  It runs as its own statement before the read: in READ COMMITTED each statement takes a
  new snapshot, so the read sees what the previous holder committed. ``FOR UPDATE`` on
  the read also makes concurrent revokes and touches of those rows wait for the commit.
- MariaDB/MySQL (InnoDB): a named lock per (table, key digest), ``GET_LOCK`` before the
  transaction and ``RELEASE_LOCK`` after its commit (a failed call drops its connection,
  which frees the lock). ``SELECT ... FOR UPDATE`` alone is not enough: an empty key has
  no row to lock, and the gap locks InnoDB takes instead are shared, so concurrent first
  logins of one key deadlock on their inserts (a storm that bounded retries do not end).
  The locking read then sees the latest committed rows whatever the isolation level.
- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the read (one writer
  at a time); WAL mode lets readers proceed meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from ... import deadline
from ...errors import StoreUnavailable, TooManySessions
from ...session import Session
from .statements import Statements, row_is_live
from .sweep import Sweeping
from .table import MAX_IP

# What a login does to the key's rows: (ids to delete, ids to make "evicted" tombstones,
# ids of the live sessions it ends).
_Plan = tuple[list[str], list[str], list[str]]


def _advisory_key(table: str, key_digest: str) -> int:
    digest = hashlib.sha256(f"pyramid_jeff:{table}:{key_digest}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)  # a PostgreSQL bigint


def _inserted_row(key_digest: str, session: Session) -> dict[str, Any]:
    return {
        "key_digest": key_digest,
        "session_id": session.id,
        "session_key": session.key,
        "token_digest": session.token_digest,
        "created_ms": session.created_ms,
        "last_seen_ms": session.last_seen_ms,
        "expires_ms": session.expires_ms,
        "ip": session.ip[:MAX_IP] if session.ip else session.ip,
        "user_agent": session.user_agent,
        "meta": session.packed_meta,
        "ended": session.ended,
    }


class Login(Sweeping, Statements):
    """The store's part that adds sessions."""

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
        read = self._key_rows(key_digest)
        row = _inserted_row(key_digest, session)

        def plan(stored: Sequence[Any], cutoff: int | None) -> _Plan | None:
            return _housekeeping(
                stored,
                cutoff,
                session.key,
                max_sessions,
                now_ms,
                idle_timeout_ms,
                replace_id,
                replace_token_digest,
                evict,
            )

        def work(connection: Connection) -> list[str] | None:
            if self.family != "mysql":
                return self._locked_create(connection, read, row, now_ms, plan)
            with self._named_lock(connection, key_digest):
                return self._locked_create(connection, read, row, now_ms, plan)

        ended = self._run(work)
        if ended is None:
            raise TooManySessions()  # the manager adds the key and the cap
        # Only rows past their absolute lifetime: whether a row is dead of idleness
        # depends on the idle timeout of whoever reads it, and applications sharing the
        # table may not share theirs. Idle-dead rows go when their lifetime ends, or with
        # an explicit sweep(now_ms, idle_timeout_ms).
        self._maybe_auto_sweep(now_ms, 0)
        return ended

    def _key_rows(self, key_digest: str) -> Select[Any]:
        """The login's read of the key's rows (locked but on SQLite, whose BEGIN IMMEDIATE
        already holds the write lock)."""
        c = self.table.c
        read = select(
            c.session_id,
            c.session_key,
            c.token_digest,
            c.created_ms,
            c.last_seen_ms,
            c.expires_ms,
            c.ended,
            # Read along, not locked: FOR UPDATE locks the rows of the FROM clause only,
            # so logins of different keys never queue on the cutoff's row.
            self._cutoff.label("cutoff"),
        ).where(c.key_digest == key_digest)
        return read if self.family == "sqlite" else read.with_for_update()

    @contextlib.contextmanager
    def _named_lock(self, connection: Connection, key_digest: str) -> Iterator[None]:
        """MariaDB/MySQL: a named lock per key, held across the transaction (an empty key
        has no row for FOR UPDATE to lock, and gap locks let concurrent first logins
        deadlock). Released after a commit or a rollback; a failed call drops the
        connection, which frees the lock."""
        # Lock names are server-wide, at most 64 characters.
        name = f"pyramid_jeff:{_advisory_key(self.table.name, key_digest):x}"
        budget = deadline.current()
        wait = self.timeout if budget is None else min(self.timeout, budget.remaining())
        wait = max(wait, deadline.MIN_WAIT)
        if connection.execute(select(func.get_lock(name, wait))).scalar() != 1:
            raise StoreUnavailable("sql: the key's login lock was not granted in time")
        yield
        connection.execute(select(func.release_lock(name)))

    def _locked_create(
        self,
        connection: Connection,
        read: Select[Any],
        row: dict[str, Any],
        now_ms: int,
        plan: Callable[[Sequence[Any], int | None], _Plan | None],
    ) -> list[str] | None:
        """The login's transaction; ``None`` (rolled back, nothing written) when the key
        is full of live sessions and eviction is not allowed."""
        t, c = self.table, self.table.c
        # A transaction of ours, as in _transaction, but that may end in a ROLLBACK.
        connection.exec_driver_sql(self._begin)
        if self.family == "postgresql":
            # Its own statement: the read's snapshot follows it.
            lock = _advisory_key(t.name, row["key_digest"])
            connection.execute(select(func.pg_advisory_xact_lock(lock)))
        stored = connection.execute(read).all()
        # Every row carries the cutoff; an empty key needs none.
        decided = plan(stored, stored[0].cutoff if stored else None)
        if decided is None:
            connection.exec_driver_sql("ROLLBACK")
            return None
        drop, evicted, ended = decided
        mine = c.key_digest == row["key_digest"]
        if drop:
            connection.execute(delete(t).where(mine, c.session_id.in_(drop)))
        if evicted:
            tombstone = self._tombstone("evicted", now_ms)
            connection.execute(update(t).where(mine, c.session_id.in_(evicted)).values(tombstone))
        connection.execute(insert(t).values(row))
        connection.exec_driver_sql("COMMIT")
        return ended


def _housekeeping(
    stored: Sequence[Any],
    cutoff: int | None,
    key: str,
    max_sessions: int,
    now_ms: int,
    idle_timeout_ms: int,
    replace_id: str | None,
    replace_token_digest: bytes | None,
    evict: bool,
) -> _Plan | None:
    """On the key's locked rows (the memory store's rules): the ids to delete (the
    replaced session, dead rows), the ids to make "evicted" tombstones, and the ids
    of the live sessions that end (the replaced one if live, then the evicted, oldest
    first). ``None`` when the key is full of live sessions and ``evict`` is false."""
    drop: list[str] = []
    ended: list[str] = []
    if replace_id is not None and replace_token_digest is not None:
        for r in stored:
            if r.session_id == replace_id and hmac.compare_digest(
                bytes(r.token_digest), replace_token_digest
            ):
                drop.append(replace_id)
                if row_is_live(r, cutoff, now_ms, idle_timeout_ms):
                    ended.append(replace_id)
    # Only this key's sessions count and are evicted (two keys' digests may collide).
    mine = [r for r in stored if r.session_key == key and r.session_id not in drop]
    if len(mine) < max_sessions:
        return drop, [], ended
    alive = []
    for r in mine:
        if row_is_live(r, cutoff, now_ms, idle_timeout_ms):
            alive.append(r)
        else:
            drop.append(r.session_id)  # tombstones and the dead make room first
    if len(alive) < max_sessions:
        return drop, [], ended
    if not evict:
        return None
    oldest = sorted(alive, key=lambda r: (int(r.created_ms), r.session_id))
    victims = [r.session_id for r in oldest[: len(alive) - max_sessions + 1]]
    return drop, victims, ended + victims

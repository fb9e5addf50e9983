"""The ends of sessions: a logout or a rotation (:meth:`Revocation.revoke`), all of a key's
(:meth:`Revocation.revoke_all`), everyone's (:meth:`Revocation.revoke_everyone`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection

from .connections import Connections
from .statements import Statements, row_is_live
from .table import CUTOFF_DIGEST, CUTOFF_ID

_NEVER = 2**63 - 1  # the largest BIGINT: the cutoff row's times, past any clock


class Revocation(Connections, Statements):
    """The store's part that ends sessions."""

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
        """One ``DELETE ... WHERE <pk> [AND token_digest = ?] [AND session_key = ?]
        RETURNING created_ms, expires_ms, last_seen_ms, ended, <cutoff>`` (PostgreSQL,
        SQLite >= 3.35, MariaDB >= 10.5); where there is no ``DELETE ... RETURNING``
        (MySQL), a transaction: ``SELECT ... FOR UPDATE``, ``DELETE``. The returned row
        tells whether a live session ended. With ``tombstone`` (an operator's revocation):
        one ``UPDATE ... SET ended = 'revoked', expires_ms = LEAST(expires_ms, now +
        TOMBSTONE_MS) WHERE <pk> [...] AND <live>``, whose row count tells whether it was
        live (on MySQL: rows matched, which are the same)."""
        t, c = self.table, self.table.c
        where = [*self._pk(key_digest, session_id)]
        if token_digest is not None:
            where.append(c.token_digest == token_digest)
        if key is not None:
            where.append(c.session_key == key)
        if tombstone:
            stmt = (
                update(t)
                .where(*where, *self._live(now_ms, idle_timeout_ms, in_write=True))
                .values(self._tombstone("revoked", now_ms))
            )
            return self._run(lambda connection: connection.execute(stmt).rowcount > 0)
        times = (c.created_ms, c.expires_ms, c.last_seen_ms, c.ended)

        def live(rows: Sequence[Any]) -> bool:
            return any(row_is_live(r, r.cutoff, now_ms, idle_timeout_ms) for r in rows)

        def work(connection: Connection) -> bool:
            if connection.dialect.delete_returning:
                cutoff = self._cutoff_in_write.label("cutoff")
                stmt = delete(t).where(*where).returning(*times, cutoff)
                return live(connection.execute(stmt).all())
            with self._transaction(connection):  # MySQL: no DELETE ... RETURNING
                read = select(*times, self._cutoff.label("cutoff")).where(*where)
                rows = connection.execute(read.with_for_update()).all()
                if rows:
                    connection.execute(delete(t).where(*where))
            return live(rows)

        return self._run(work)

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> list[str]:
        """The live rows of the key (``[AND session_id <> keep] [AND session_key = ?]``)
        become "revoked" tombstones, its other dead rows but tombstones are deleted.
        PostgreSQL: one ``WITH dead AS (DELETE ... WHERE <not ended> AND <dead>) UPDATE
        ... WHERE <live> RETURNING session_id``. SQLite: ``BEGIN IMMEDIATE``, ``DELETE``,
        ``UPDATE ... RETURNING session_id``, ``COMMIT`` (in-process). MariaDB/MySQL (no
        ``UPDATE ... RETURNING``): see :meth:`_revoke_all_read_first`."""
        t, c = self.table, self.table.c
        where = [c.key_digest == key_digest]
        if keep is not None:
            where.append(c.session_id != keep)
        if key is not None:
            where.append(c.session_key == key)
        values = self._tombstone("revoked", now_ms)
        # The live become tombstones; the dead sessions are deleted; tombstones (and
        # the sessions the cutoff ended, which read as tombstones) stay as they are.
        live = (*where, *self._live(now_ms, idle_timeout_ms, in_write=True))
        gone = or_(c.expires_ms <= now_ms, c.last_seen_ms <= now_ms - idle_timeout_ms)
        if not idle_timeout_ms:
            gone = c.expires_ms <= now_ms
        dead = (*where, *self._not_ended(in_write=True), gone)

        def work(connection: Connection) -> list[str]:
            tombstones = update(t).where(*live).values(values).returning(c.session_id)
            if self.family == "postgresql":  # one statement: the DELETE as a WITH clause
                stmt = tombstones.add_cte(delete(t).where(*dead).cte("dead"))
                return list(connection.execute(stmt).scalars())
            with self._transaction(connection):
                if connection.dialect.update_returning:  # SQLite
                    connection.execute(delete(t).where(*dead))
                    return list(connection.execute(tombstones).scalars())
                return self._revoke_all_read_first(
                    connection, key_digest, where, values, now_ms, idle_timeout_ms
                )

        return self._run(work)

    def _revoke_all_read_first(
        self,
        connection: Connection,
        key_digest: str,
        where: Sequence[Any],
        values: dict[str, Any],
        now_ms: int,
        idle_timeout_ms: int,
    ) -> list[str]:
        """MariaDB/MySQL, inside the transaction: ``SELECT ... FOR UPDATE`` of the key's
        rows but tombstones, sorted in Python; then at most one ``DELETE`` and one
        ``UPDATE`` by primary key. Returns the ids of the sessions it ended."""
        t, c = self.table, self.table.c
        read = select(
            c.session_id,
            c.created_ms,
            c.expires_ms,
            c.last_seen_ms,
            c.ended,
            self._cutoff.label("cutoff"),  # read along, not locked
        ).where(*where, c.ended.is_(None))
        ended, deleted = [], []
        for r in connection.execute(read.with_for_update()):
            if row_is_live(r, r.cutoff, now_ms, idle_timeout_ms):
                ended.append(r.session_id)
            elif r.cutoff is None or r.created_ms > r.cutoff:
                deleted.append(r.session_id)
        mine = c.key_digest == key_digest
        if deleted:
            connection.execute(delete(t).where(mine, c.session_id.in_(deleted)))
        if ended:
            connection.execute(update(t).where(mine, c.session_id.in_(ended)).values(values))
        return ended

    def revoke_everyone(self, *, now_ms: int) -> None:
        """Set the cutoff to ``now_ms`` unless it is later already: one upsert of the
        cutoff row that keeps the later time, whatever the number of sessions: ``INSERT
        ... ON CONFLICT DO UPDATE SET created_ms = GREATEST(created_ms,
        excluded.created_ms)`` (SQLite ``max()``; MariaDB/MySQL ``ON DUPLICATE KEY
        UPDATE``)."""
        t, c = self.table, self.table.c
        row = {
            "key_digest": CUTOFF_DIGEST,
            "session_id": CUTOFF_ID,
            "session_key": "pyramid_jeff: sessions created up to created_ms are revoked",
            "token_digest": b"",
            "created_ms": now_ms,
            "last_seen_ms": _NEVER,
            "expires_ms": _NEVER,
            "ip": None,
            "user_agent": None,
            "meta": b"",
            "ended": None,
        }
        stmt: Any
        if self.family == "mysql":
            upsert = mysql.insert(t).values(row)
            later = func.greatest(c.created_ms, upsert.inserted.created_ms)
            stmt = upsert.on_duplicate_key_update(created_ms=later)
        elif self.family in ("postgresql", "sqlite"):
            dialect_insert = postgresql.insert if self.family == "postgresql" else sqlite.insert
            conflict = dialect_insert(t).values(row)
            # SQLite's max() of two arguments is PostgreSQL's greatest().
            larger = func.greatest if self.family == "postgresql" else func.max
            stmt = conflict.on_conflict_do_update(
                index_elements=[c.key_digest, c.session_id],
                set_={"created_ms": larger(c.created_ms, conflict.excluded.created_ms)},
            )
        else:
            raise NotImplementedError(f"revoke_everyone on {self.engine.dialect.name}")
        self._run(lambda connection: connection.execute(stmt))

"""The pieces of SQL the operations share, built on the store's table for its dialect.

Every operation is a round trip per statement (each in autocommit mode is its own
transaction). In the operations' docstrings, ``<cutoff>`` is ``(SELECT created_ms FROM t AS
everyone WHERE <the cutoff's primary key>)`` (:attr:`Statements._cutoff`; on MariaDB/MySQL
inside an UPDATE or DELETE, read through a derived table); ``<not ended>`` is ``ended IS
NULL AND created_ms > COALESCE(<cutoff>, <min>)``; ``<live>`` adds the times
(``expires_ms > now`` and, with an idle timeout, ``last_seen_ms > now - idle``).

A session whose ``created_ms`` is at or before the cutoff is dead to every operation;
``get`` and ``list`` give it as ``session.tombstone("revoked", cutoff)``. Its row stays
until its own expiry (then the sweep takes it): finding such rows sooner would take a scan.

The cutoff's row is never locked by a read (``get``, ``list``, the login's ``FOR UPDATE``
read, which locks its FROM clause's rows only), so keys never queue on it. On MariaDB an
``UPDATE`` or ``DELETE`` that reads it (touch, revoke) takes a shared lock on it for the
statement (a gap lock while there is no cutoff yet): those wait only for revoke_everyone's
one-statement write."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, Table, case, func, select

from ...session import TOMBSTONE_MS, Session
from .table import CUTOFF_DIGEST, CUTOFF_ID

_NO_CUTOFF = -(2**63)  # what the cutoff is while revoke_everyone was never called


def row_is_live(row: Any, cutoff: int | None, now_ms: int, idle_timeout_ms: int) -> bool:
    """Session.is_live on a row's columns, and not ended by the revoke_everyone cutoff."""
    if row.ended is not None or (cutoff is not None and row.created_ms <= cutoff):
        return False
    if now_ms >= row.expires_ms:
        return False
    return not (idle_timeout_ms and now_ms >= row.last_seen_ms + idle_timeout_ms)


def session_of(row: Any) -> Session:
    """A session from a row that carries the cutoff: one created at or before it reads as
    the "revoked" tombstone that revoke_everyone made of it."""
    stored = Session(
        key=row.session_key,
        id=row.session_id,
        created_ms=int(row.created_ms),
        last_seen_ms=int(row.last_seen_ms),
        expires_ms=int(row.expires_ms),
        ip=row.ip,
        user_agent=row.user_agent,
        packed_meta=bytes(row.meta),
        token_digest=bytes(row.token_digest),
        ended=row.ended,
    )
    if row.cutoff is not None and stored.ended is None and stored.created_ms <= row.cutoff:
        return stored.tombstone("revoked", int(row.cutoff))
    return stored


class Statements:
    """The store's part that builds the conditions and values its statements share."""

    table: Table
    family: str

    def _pk(self, key_digest: str, session_id: str) -> tuple[Any, Any]:
        c = self.table.c
        return c.key_digest == key_digest, c.session_id == session_id

    def _cutoff_read(self) -> Select[Any]:
        c = self.table.alias("everyone").c
        return select(c.created_ms).where(c.key_digest == CUTOFF_DIGEST, c.session_id == CUTOFF_ID)

    @functools.cached_property
    def _cutoff(self) -> Any:
        """The revoke_everyone cutoff (NULL when there is none), as a scalar subquery:
        a primary-key read inside the statement that needs it, not a round trip."""
        return self._cutoff_read().scalar_subquery()

    @functools.cached_property
    def _cutoff_in_write(self) -> Any:
        """The cutoff inside an UPDATE or DELETE of the table: MySQL refuses a subquery on
        the table being changed (error 1093) unless it reads a derived table that is
        materialised, which LIMIT ensures. MariaDB accepts both."""
        if self.family != "mysql":
            return self._cutoff
        derived = self._cutoff_read().limit(1).subquery("everyone_derived")
        return select(derived.c.created_ms).scalar_subquery()

    def _not_ended(self, *, in_write: bool) -> list[Any]:
        """Not a tombstone, and created after the cutoff (when there is one)."""
        c = self.table.c
        cutoff = self._cutoff_in_write if in_write else self._cutoff
        return [c.ended.is_(None), c.created_ms > func.coalesce(cutoff, _NO_CUTOFF)]

    def _live(self, now_ms: int, idle_timeout_ms: int, *, in_write: bool) -> list[Any]:
        """Session.is_live, and not ended by the cutoff, as conditions on a row."""
        c = self.table.c
        where = [*self._not_ended(in_write=in_write), c.expires_ms > now_ms]
        if idle_timeout_ms:
            where.append(c.last_seen_ms > now_ms - idle_timeout_ms)
        return where

    def _tombstone(self, reason: str, now_ms: int) -> dict[str, Any]:
        """The values of an UPDATE that makes rows tombstones (Session.tombstone)."""
        c = self.table.c
        until = now_ms + TOMBSTONE_MS
        return {
            "ended": reason,
            "expires_ms": case((c.expires_ms > until, until), else_=c.expires_ms),
        }

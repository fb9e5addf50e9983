"""The sessions table (:func:`make_table`; default name ``jeff_sessions``), one row per
session::

    key_digest    VARCHAR(32)  }  primary key (key_digest, session_id): a key's rows are
    session_id    VARCHAR(32)  }  one primary-key range, a session is one primary-key row
    session_key   VARCHAR(512)    the application's key (two keys' digests may collide)
    token_digest  BINARY 32       SHA-256 of the token; never the token itself
    created_ms, last_seen_ms, expires_ms   BIGINT, milliseconds since the epoch
    ip            VARCHAR(128)    (longer values are cut to 128 characters)
    user_agent    VARCHAR(256)    (session.MAX_USER_AGENT)
    meta          BLOB <= 4 KiB   msgpack (session.MAX_META_BYTES)
    ended         VARCHAR(16)     NULL, or a tombstone's reason ("revoked", "evicted")
    index on expires_ms, index on last_seen_ms: the sweep of dead rows (expired, or idle
    past the idle timeout) is two index range scans, never a table scan.

On MariaDB/MySQL the three identifiers are ``VARBINARY`` (compared byte for byte, whatever
the server's default collation: ``utf8mb4_general_ci`` would make ``aB`` equal ``Ab``) and
the table is InnoDB, utf8mb4. The :class:`~sqlalchemy.Table` is importable
(``pyramid_jeff.sql_store.jeff_sessions``, or ``make_table(your_metadata, "name")``) for
Alembic; the store creates it when it is missing (:class:`TableUpkeep`).

*revoke_everyone* keeps its cutoff in one row of the same table, under the key digest
:data:`CUTOFF_DIGEST` (no real digest equals it: those are 22 base64url characters), its
time in ``created_ms``, and times past any clock in ``expires_ms`` and ``last_seen_ms``, so
no sweep (ours, or an operator's ``DELETE ... WHERE expires_ms < ?``) ever removes it. No
second table: nothing more for a migration to create, and the statements that need the
cutoff read it as a scalar subquery on the primary key, inside themselves.
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.schema import CreateColumn

from ...credentials import MAX_KEY_BYTES
from ...session import MAX_META_BYTES, MAX_USER_AGENT

log = logging.getLogger(__name__)

DEFAULT_TABLE = "jeff_sessions"
ID_LENGTH = 32  # key digests and session ids are 22 base64url characters; some slack
MAX_IP = 128
ENDED_LENGTH = 16
# Columns a table made by an earlier release may lack, added at start-up (all nullable).
ADDED_COLUMNS = ("ended",)
CUTOFF_DIGEST = "!everyone"
CUTOFF_ID = "!cutoff"


class Utf8Binary(TypeDecorator[str]):
    """A ``str`` kept as its UTF-8 bytes in a ``VARBINARY`` (the MariaDB/MySQL variant of
    the identifier columns): compared byte for byte, whatever the server's collation."""

    impl = mysql.VARBINARY
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else value.encode("utf-8")

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else bytes(value).decode("utf-8")


def _identifier(length: int) -> Any:
    # Byte-exact on MariaDB/MySQL; elsewhere the default collations compare exactly.
    return String(length).with_variant(Utf8Binary(length), "mysql", "mariadb")


def _index_name(table: str, column: str) -> str:
    name = f"ix_{table}_{column}"
    if len(name) <= 60:  # PostgreSQL truncates identifiers at 63 bytes, MariaDB at 64
        return name
    return f"ix_{hashlib.sha256(name.encode()).hexdigest()[:16]}_{column}"


def make_table(metadata: MetaData, name: str = DEFAULT_TABLE) -> Table:
    """The sessions table, in ``metadata``, under ``name`` (for Alembic or a custom name)."""
    return Table(
        name,
        metadata,
        Column("key_digest", _identifier(ID_LENGTH), primary_key=True),
        Column("session_id", _identifier(ID_LENGTH), primary_key=True),
        Column(
            "session_key",
            _identifier(MAX_KEY_BYTES),
            nullable=False,
        ),
        Column(
            "token_digest",
            LargeBinary(32).with_variant(mysql.VARBINARY(32), "mysql", "mariadb"),
            nullable=False,
        ),
        Column("created_ms", BigInteger, nullable=False),
        Column("last_seen_ms", BigInteger, nullable=False),
        Column("expires_ms", BigInteger, nullable=False),
        Column("ip", String(MAX_IP), nullable=True),
        Column("user_agent", String(MAX_USER_AGENT), nullable=True),
        Column("meta", LargeBinary(MAX_META_BYTES), nullable=False),
        # A tombstone's reason ("revoked", "evicted"); NULL for a session. Last and
        # nullable: the store adds it to a table made without it (see _add_missing_columns).
        Column("ended", String(ENDED_LENGTH), nullable=True),
        # The sweep: expired rows, and rows idle past the idle timeout.
        Index(_index_name(name, "expires_ms"), "expires_ms"),
        Index(_index_name(name, "last_seen_ms"), "last_seen_ms"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )


metadata = MetaData()
jeff_sessions = make_table(metadata)


class TableUpkeep:
    """The store's part that creates the table (``create_all(checkfirst=True)``) when it is
    missing and adds the columns it lacks: at construction, or, when the database cannot
    be reached then (the application still starts), in the first call that reaches it."""

    metadata: MetaData
    table: Table
    family: str
    timeout: float
    _table_ready: bool

    def _ensure_table(self, connection: Connection) -> None:
        try:
            self.metadata.create_all(connection, checkfirst=True)
        except sa_exc.DBAPIError:
            # Another process created it between the check and the CREATE.
            if not sa_inspect(connection).has_table(self.table.name):
                raise
        self._add_missing_columns(connection)
        self._table_ready = True

    def _missing_columns(self, connection: Connection) -> list[Column[Any]]:
        present = {
            column["name"] for column in sa_inspect(connection).get_columns(self.table.name)
        }
        return [self.table.c[name] for name in ADDED_COLUMNS if name not in present]

    def _add_missing_columns(self, connection: Connection) -> None:
        """Upgrade a table made before tombstones: ``ALTER TABLE ... ADD COLUMN ended
        VARCHAR(16)`` (nullable, no default: a catalogue change on all three dialects,
        whatever the rows). Its rows read NULL, a session as it was: nobody is logged
        out. An earlier release's processes name their columns, so they keep working
        beside this one during a rolling upgrade. On a failure the next call tries again.

        Alembic users add the column in a migration instead (``op.add_column(...,
        sa.Column("ended", sa.String(16), nullable=True))``); the store then finds it."""
        missing = self._missing_columns(connection)
        if not missing:
            return
        dialect = connection.dialect
        table = dialect.identifier_preparer.format_table(self.table)
        if self.family == "mysql":
            # The metadata lock waits lock_wait_timeout (a year by default) behind open
            # transactions on the table, and every later statement on it waits behind
            # the ALTER: bound that wait as every other one is (PostgreSQL: lock_timeout).
            seconds = max(math.ceil(self.timeout), 1)
            connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {seconds}")
        for column in missing:
            ddl = f"ALTER TABLE {table} ADD COLUMN {CreateColumn(column).compile(dialect=dialect)}"
            try:
                connection.exec_driver_sql(ddl)
            except sa_exc.DBAPIError:
                # Another process added it meanwhile; or we may not alter the table.
                if column.name in {c.name for c in self._missing_columns(connection)}:
                    log.error("the session table lacks a column; add it with: %s", ddl)
                    raise
            log.info("added column %s to the session table: %s", column.name, ddl)

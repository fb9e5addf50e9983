"""A store in an SQL database through SQLAlchemy 2 Core: SQLite, PostgreSQL, MariaDB/MySQL.

One table (default ``jeff_sessions``), one row per session, primary key (key_digest,
session_id): a key's sessions are one primary-key range, a session one primary-key row;
the token only as its SHA-256 digest; a tombstone's reason in ``ended``; indexes on
``expires_ms`` and ``last_seen_ms`` for the sweep. The revoke_everyone cutoff is one more
row of it. Applications using Alembic import :data:`metadata` (or call
:func:`make_table`); the store creates the table, or adds the columns it lacks, when it
finds it so.

Every call runs on a connection of the store's own pool, in autocommit mode, never in the
application's transaction, and is bounded by ``timeout`` in total (inside a request, by
the request's budget); a database that cannot answer is
:class:`~pyramid_jeff.StoreUnavailable`. A login is one transaction under a per-key lock.

Modules: :mod:`.table` (the schema), :mod:`.store` (:class:`SQLStore`, the reads),
:mod:`.login`, :mod:`.revocation`, :mod:`.sweep`, :mod:`.statements` (the SQL they share),
:mod:`.connections` (running a call; the timeouts), :mod:`.engine`, :mod:`.watchdog`,
:mod:`.failures`.
"""

from .connections import DEADLOCK_ATTEMPTS
from .store import SQLStore
from .sweep import AUTO_SWEEP_BATCH, AUTO_SWEEP_INTERVAL
from .table import (
    ADDED_COLUMNS,
    CUTOFF_DIGEST,
    CUTOFF_ID,
    DEFAULT_TABLE,
    ENDED_LENGTH,
    ID_LENGTH,
    MAX_IP,
    Utf8Binary,
    jeff_sessions,
    make_table,
    metadata,
)

__all__ = [
    "ADDED_COLUMNS",
    "AUTO_SWEEP_BATCH",
    "AUTO_SWEEP_INTERVAL",
    "CUTOFF_DIGEST",
    "CUTOFF_ID",
    "DEADLOCK_ATTEMPTS",
    "DEFAULT_TABLE",
    "ENDED_LENGTH",
    "ID_LENGTH",
    "MAX_IP",
    "SQLStore",
    "Utf8Binary",
    "jeff_sessions",
    "make_table",
    "metadata",
]

"""A store in an SQL database through SQLAlchemy 2 Core: SQLite, PostgreSQL, MariaDB/MySQL.

Table (:func:`make_table`; default name ``jeff_sessions``), one row per session::

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
Alembic; the store creates it (``create_all(checkfirst=True)``) when it is missing: at
construction, or, when the database cannot be reached then (the application still
starts), by the first call that reaches it.

Upgrades: a table made before tombstones lacks ``ended``; the store adds it at the same
moment (``ALTER TABLE ... ADD COLUMN ended VARCHAR(16)``: nullable, no default, so a
catalogue change on all three, whatever the rows). Existing rows read NULL, which is a
session as it was: nobody is logged out. Processes of the earlier release name their
columns, so they keep working on the altered table during a rolling upgrade. The ALTER
waits for a lock on the table at most ``timeout`` (PostgreSQL ``lock_timeout``, MariaDB
``lock_wait_timeout``); on a failure it is tried again by the next call. Alembic users
add the column in a migration instead (``op.add_column(..., sa.Column("ended",
sa.String(16), nullable=True))``); the store then finds it present.

*revoke_everyone* keeps its cutoff in one row of the same table, under the key digest
``"!everyone"`` (no real digest equals it: those are 22 base64url characters), its time in
``created_ms``, and times past any clock in ``expires_ms`` and ``last_seen_ms``, so no sweep
(ours, or an operator's ``DELETE ... WHERE expires_ms < ?``) ever removes it. No second
table: nothing more for a migration to create, and the statements that need the cutoff
read it as a scalar subquery on the primary key, inside themselves. A session whose
``created_ms`` is at or before the cutoff is dead to every operation; ``get`` and ``list``
give it as ``session.tombstone("revoked", cutoff)``. Its row stays until its own expiry
(then the sweep takes it): finding such rows sooner would take a scan.

Statements (a round trip each; every operation runs on a connection of its own pool in
autocommit mode, so a single statement is its own transaction and costs one round trip).
``<cutoff>`` is ``(SELECT created_ms FROM t AS everyone WHERE <the cutoff's primary key>)``
(on MariaDB/MySQL inside an UPDATE or DELETE, read through a derived table: MySQL refuses a
subquery on the table it changes); ``<not ended>`` is ``ended IS NULL AND created_ms >
COALESCE(<cutoff>, <min>)``, ``<live>`` adds the times (``expires_ms > now`` and, with an
idle timeout, ``last_seen_ms > now - idle``).

- get: one ``SELECT t.*, <cutoff> FROM t WHERE key_digest = ? AND session_id = ?``: the
  verify path stays one statement, whatever the number of sessions of the key.
- list: ``SELECT t.*, <cutoff> FROM t WHERE key_digest = ?`` (primary-key range).
- touch: update-only, written only past the interval, only on a ``<not ended>`` row.
  MariaDB/MySQL: one ``UPDATE ... SET last_seen_ms = CASE WHEN last_seen_ms <= ? THEN ?
  ELSE last_seen_ms END WHERE <pk> AND <not ended>``; SQLAlchemy's MySQL dialects connect
  with ``CLIENT.FOUND_ROWS``, so the row count is the rows *matched* (1: the session
  exists), and InnoDB writes nothing for an unchanged row. PostgreSQL: one statement,
  ``WITH u AS (UPDATE ... WHERE <pk> AND <not ended> AND last_seen_ms <= ? RETURNING 1)
  SELECT EXISTS (SELECT 1 FROM u) OR EXISTS (SELECT 1 FROM t WHERE <pk> AND <not
  ended>)``. SQLite: the conditional ``UPDATE``; only when it changed nothing, a ``SELECT``
  of the key tells "too recent" from "gone" (in-process, no round trip).
- revoke (a logout, a rotation): one ``DELETE ... WHERE <pk> [AND token_digest = ?] [AND
  session_key = ?] RETURNING created_ms, expires_ms, last_seen_ms, ended, <cutoff>``
  (PostgreSQL, SQLite >= 3.35, MariaDB >= 10.5); where there is no ``DELETE ...
  RETURNING`` (MySQL), a transaction: ``SELECT ... FOR UPDATE``, ``DELETE``. The returned
  row tells whether a live session ended. With ``tombstone`` (an operator's revocation):
  one ``UPDATE ... SET ended = 'revoked', expires_ms = LEAST(expires_ms, now + TOMBSTONE_MS)
  WHERE <pk> [...] AND <live>``, whose row count tells whether it was live.
- revoke_all: the live rows of the key (``[AND session_id <> keep] [AND session_key =
  ?]``) become "revoked" tombstones, its other dead rows but tombstones are deleted.
  PostgreSQL: one ``WITH dead AS (DELETE ... WHERE <not ended> AND <dead>) UPDATE ... WHERE
  <live> RETURNING session_id``. SQLite: ``BEGIN IMMEDIATE``, ``DELETE``, ``UPDATE ...
  RETURNING session_id``, ``COMMIT`` (in-process). MariaDB/MySQL (no ``UPDATE ...
  RETURNING``): ``START TRANSACTION``, ``SELECT ... FOR UPDATE``, then at most one
  ``DELETE`` and one ``UPDATE`` by primary key, ``COMMIT``.
- revoke_everyone: one upsert of the cutoff's row that keeps the later time: ``INSERT ...
  ON CONFLICT DO UPDATE SET created_ms = GREATEST(created_ms, excluded.created_ms)``
  (SQLite ``max()``; MariaDB/MySQL ``ON DUPLICATE KEY UPDATE``).
- create: one short transaction. ``BEGIN`` (SQLite ``BEGIN IMMEDIATE``, MariaDB ``START
  TRANSACTION``, preceded by ``SELECT GET_LOCK(<key's lock>, <wait>)``); PostgreSQL
  ``SELECT pg_advisory_xact_lock(<hash of table and key digest>)``; ``SELECT <the key's
  rows>, <cutoff> [FOR UPDATE]`` (the lock is on the key's rows only, never on the
  cutoff's); then, decided in Python on those rows: at most one ``DELETE ... WHERE
  key_digest = ? AND session_id IN (...)`` (the replaced session if its token digest
  matches; while the key holds max_sessions, its dead rows and tombstones) and at most one
  ``UPDATE ... SET ended = 'evicted', expires_ms = LEAST(...) WHERE key_digest = ? AND
  session_id IN (...)`` (the oldest live sessions of this key by (created_ms, session_id),
  as many as the new one needs); ``INSERT``; ``COMMIT`` (MariaDB: then ``SELECT
  RELEASE_LOCK(...)``). Round trips: 4 (SQLite), 5 (PostgreSQL), 6 (MariaDB), plus one
  when something is deleted and one when something is evicted. Without ``evict``, a key
  still full of live sessions ends the transaction with ``ROLLBACK`` instead: nothing
  written, :class:`~pyramid_jeff.TooManySessions` raised.
- sweep: per batch, ``SELECT key_digest, session_id ... WHERE expires_ms <= ? LIMIT n``
  (and, with an idle timeout, ``... WHERE last_seen_ms <= ? AND ended IS NULL LIMIT`` the
  rest: a tombstone is kept to its own expiry), then one ``DELETE ... WHERE (key_digest,
  session_id) IN (...) AND <still dead>``: each batch is its own transaction, so a sweep
  never holds many locks nor a long transaction. After a login has committed, a
  background thread sweeps one batch of rows past their absolute lifetime (never by idle
  timeout, which may differ between applications sharing the table), at most once every
  :data:`AUTO_SWEEP_INTERVAL` seconds per store object: no request waits for it.
- stats: one ``SELECT COUNT(*), COUNT(ended), <cutoff> FROM t``.

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

The cutoff's row is never locked by a read (``get``, ``list``, the login's ``FOR UPDATE``
read, which locks its FROM clause's rows only), so keys never queue on it. On MariaDB an
``UPDATE`` or ``DELETE`` that reads it (touch, revoke) takes a shared lock on it for the
statement (a gap lock while there is no cutoff yet): those wait only for revoke_everyone's
one-statement write.

Timeouts (``timeout``, default 1 s, bounds every wait): the pool wait for a free
connection (``pool_size`` connections, no overflow); connecting (pymysql
``connect_timeout``; libpq/psycopg ``connect_timeout``, whole seconds, at least 2: psycopg
rounds anything lower up to 2); on the server, PostgreSQL ``statement_timeout`` and
``lock_timeout`` (and ``idle_in_transaction_session_timeout``), MariaDB ``max_statement_time``
and ``innodb_lock_wait_timeout`` (whole seconds, at least 1) and the ``GET_LOCK`` wait,
SQLite's busy timeout (inside a request: what the budget has left). On
the client, a watchdog thread cuts the connection of a call that has not finished in
time (it shuts the socket down; SQLite: ``interrupt()``), so a frozen network or server
(which no server-side timeout can end) costs at most the call's bound, and the cut
connection is discarded. Inside a request (:mod:`pyramid_jeff.deadline`, budget
``request_budget`` = ``timeout``), the budget is checked before each call and the call
runs against it: the pool wait, the pymysql connect timeout and the watchdog get only
what is left, so a request spends at most its budget on the store in total, plus the
connect of a new connection to an unresponsive host: PostgreSQL at least 2 s (psycopg's
floor), MariaDB/MySQL up to the time left plus the watchdog's grace (the handshake's read
timeout). The server-side limits stay at ``timeout`` (changing them per call would cost a
round trip): a statement the watchdog abandoned ends on the server within ``timeout``.

Failures: a database that cannot answer now (connection refused or cut, pool exhausted,
time out, lock wait timeout, deadlock after the retries, read-only server) is
:class:`~pyramid_jeff.StoreUnavailable`; a programming error (a wrong table, bad data)
propagates as itself. Nothing is retried silently except a deadlock or serialization
failure; the connection of any failed call is discarded.

Beside pyramid_tm / zope.sqlalchemy: the store has its own engine and pool (or, given an
engine, checks out connections of its own from it) and never joins the application's
transaction: aborting the application's transaction does not undo a login or a logout,
and a slow application transaction holds none of these rows locked. A store created
before a fork (``--preload``) gives up the inherited connections in each child.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
import heapq
import hmac
import inspect as pyinspect
import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    TypeDecorator,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.pool import QueuePool
from sqlalchemy.schema import CreateColumn

from . import deadline
from .credentials import MAX_KEY_BYTES
from .errors import StoreUnavailable, TooManySessions
from .session import MAX_META_BYTES, MAX_USER_AGENT, TOMBSTONE_MS, Session

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TABLE = "jeff_sessions"
ID_LENGTH = 32  # key digests and session ids are 22 base64url characters; some slack
MAX_IP = 128
# Attempts of a call that hit a deadlock or a serialization failure (the first included).
DEADLOCK_ATTEMPTS = 3
# Seconds between two automatic sweeps of one store object, and the rows each deletes.
AUTO_SWEEP_INTERVAL = 60.0
AUTO_SWEEP_BATCH = 500
ENDED_LENGTH = 16
# Columns a table made by an earlier release may lack, added at start-up (all nullable).
ADDED_COLUMNS = ("ended",)
# The revoke_everyone cutoff is one row of the sessions table under a key digest no
# real one equals (those are 22 base64url characters), its time in created_ms. Times
# past any clock keep it out of every sweep, ours or an operator's own DELETE.
CUTOFF_DIGEST = "!everyone"
CUTOFF_ID = "!cutoff"
_NEVER = 2**63 - 1  # the largest BIGINT
_NO_CUTOFF = -(2**63)  # what the cutoff is while revoke_everyone was never called
# Outside a request, the watchdog fires this long after ``timeout``, so that the server's
# own timeouts (a clean error, a connection that stays usable) normally win.
_WATCHDOG_GRACE = 0.25


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


def _row_is_live(row: Any, cutoff: int | None, now_ms: int, idle_timeout_ms: int) -> bool:
    # Session.is_live on a row's columns, and not ended by the revoke_everyone cutoff.
    if row.ended is not None or (cutoff is not None and row.created_ms <= cutoff):
        return False
    if now_ms >= row.expires_ms:
        return False
    return not (idle_timeout_ms and now_ms >= row.last_seen_ms + idle_timeout_ms)


# What a login does to the key's rows: (ids to delete, ids to make "evicted" tombstones,
# ids of the live sessions it ends).
_Plan = tuple[builtins.list[str], builtins.list[str], builtins.list[str]]


# -- the watchdog ---------------------------------------------------------------------


class _Watch:
    __slots__ = ("cut", "deadline", "done", "fired")

    def __init__(self, deadline: float, cut: Callable[[], None]) -> None:
        self.deadline = deadline
        self.cut = cut
        self.done = False
        self.fired = False


class _Watchdog:
    """One thread per process that cuts the connection of a call past its deadline.

    Arming is a heap push under a lock; a disarmed watch stays in the heap until its
    deadline (the thread is woken only by a deadline earlier than the one it sleeps on).
    The cut runs under the lock, and disarming takes the lock: once :meth:`disarm` has
    returned, the connection is never cut (it may go back to the pool safely).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._pid: int | None = None

    def arm(self, seconds: float, cut: Callable[[], None]) -> _Watch:
        watch = _Watch(time.monotonic() + seconds, cut)
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: no thread yet
                self._pid = os.getpid()
                self._heap = []
                threading.Thread(
                    target=self._run, name="pyramid_jeff-sql-watchdog", daemon=True
                ).start()
            earliest = self._heap[0][0] if self._heap else math.inf
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if watch.deadline < earliest:
                self._wake.notify()
        return watch

    def disarm(self, watch: _Watch) -> bool:
        """End the watch; ``True`` if it had already cut the connection."""
        with self._lock:
            watch.done = True
            return watch.fired

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self._heap)
                    if not watch.done:
                        watch.done = watch.fired = True
                        try:
                            watch.cut()
                        except Exception:  # a connection already closed: nothing to cut
                            log.debug("cutting a timed-out connection failed", exc_info=True)
                self._wake.wait(self._heap[0][0] - now if self._heap else None)

    def _after_fork(self) -> None:
        # A lock held by another thread at fork time would stay held in the child.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap = []
        self._pid = None


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG._after_fork)


def _shutdown_fd(fd: int) -> None:
    # shutdown() acts on the socket, not the descriptor: the driver's blocked read or
    # write returns at once with an error, and the driver still owns (and closes) its fd.
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()


def _cutter(dbapi_connection: Any) -> Callable[[], None] | None:
    """How to end a blocked call on this DBAPI connection, if the driver lets us."""
    interrupt = getattr(dbapi_connection, "interrupt", None)  # sqlite3
    if callable(interrupt):
        cut: Callable[[], None] = interrupt
        return cut
    sock = getattr(dbapi_connection, "_sock", None)  # pymysql
    if isinstance(sock, socket.socket):
        return lambda: sock.shutdown(socket.SHUT_RDWR)
    fileno = getattr(dbapi_connection, "fileno", None)  # psycopg, psycopg2
    if callable(fileno):
        fd: int = fileno()
        return lambda: _shutdown_fd(fd)
    return None


# -- errors ---------------------------------------------------------------------------

_DEADLOCK_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure
_MYSQL_DEADLOCK = 1213
_MYSQL_UNAVAILABLE = (1205, 1290, 1836, 1969, 3024)  # lock wait, read-only, statement time


def _mysql_errno(exc: sa_exc.DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _is_deadlock(exc: BaseException) -> bool:
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _DEADLOCK_SQLSTATES:
        return True
    return _mysql_errno(exc) == _MYSQL_DEADLOCK


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means "the database cannot answer now" (not a bug of ours)."""
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True  # the pool had no free connection in time; a dead pooled connection
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError)):
        return True  # refused, cut, timed out, deadlocked, shutting down, read-only...
    return (
        _mysql_errno(exc) in _MYSQL_UNAVAILABLE or getattr(exc.orig, "sqlstate", None) == "25006"
    )


def _describe(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"sql: {type(cause).__name__}: {detail}"


# -- engines --------------------------------------------------------------------------


class _BudgetedPool(QueuePool):
    """Inside a request, a wait for a free connection gets at most what is left."""

    @property
    def _timeout(self) -> float:
        budget = deadline.current()
        configured: float = self._jeff_timeout
        if budget is None:
            return configured
        return min(configured, max(budget.remaining(), deadline.MIN_WAIT))

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._jeff_timeout = value


def _supports_skip_autocommit_rollback() -> bool:
    # SQLAlchemy >= 2.0.43: without it, closing an autocommit connection still calls the
    # driver's rollback(), a round trip on pymysql.
    return "skip_autocommit_rollback" in pyinspect.signature(DefaultDialect.__init__).parameters


def _family(engine: Engine) -> str:
    name = engine.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def _engine_for_url(url: URL, timeout: float, pool_size: int) -> Engine:
    family = "mysql" if url.get_backend_name() in ("mysql", "mariadb") else url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if family == "postgresql":
        # psycopg reads whole seconds and rounds anything below 2 up to 2.
        connect_args = {"connect_timeout": max(2, math.ceil(timeout))}
    elif family == "mysql":
        connect_args = {
            "connect_timeout": timeout,
            "read_timeout": timeout + _WATCHDOG_GRACE,
            "write_timeout": timeout + _WATCHDOG_GRACE,
        }
    elif family == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise ValueError(
                "an in-memory SQLite database is private to one connection: use memory:// "
                "for an in-process store, or a file (sqlite:///path.db)"
            )
        connect_args = {"timeout": timeout, "check_same_thread": False}
    options: dict[str, Any] = {
        "poolclass": _BudgetedPool,
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": timeout,
        "pool_recycle": 3600,  # MariaDB closes connections idle past wait_timeout (8 h)
        "pool_reset_on_return": None,  # autocommit: nothing to roll back
        "isolation_level": "AUTOCOMMIT",
        "connect_args": connect_args,
    }
    if _supports_skip_autocommit_rollback():
        options["skip_autocommit_rollback"] = True
    return create_engine(url, **options)


def _advisory_key(table: str, key_digest: str) -> int:
    digest = hashlib.sha256(f"pyramid_jeff:{table}:{key_digest}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)  # a PostgreSQL bigint


class SQLStore:
    """Sessions in a table of an SQL database (see the module's documentation).

    ``engine`` may be one the application made (this store then checks out connections
    of its own from it, and never touches the application's transactions): the store
    runs its calls in autocommit mode (``engine.execution_options(isolation_level=
    "AUTOCOMMIT")`` unless the engine already is) and sets the server-side timeouts
    on each new connection. Bounds on the pool and
    on connecting are the engine's own; the watchdog bounds each call by ``timeout``.
    """

    def __init__(
        self, engine: Engine, *, table: str = DEFAULT_TABLE, timeout: float = 1.0
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.timeout = timeout
        # Seconds one request may wait on the database in total (see pyramid_jeff.deadline).
        self.request_budget: float | None = timeout
        self.metadata = MetaData()
        self.table = make_table(self.metadata, table)
        self.family = _family(engine)
        self._given_engine = engine
        if getattr(engine.dialect, "_on_connect_isolation_level", None) != "AUTOCOMMIT":
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.engine = engine
        self._begin = {"sqlite": "BEGIN IMMEDIATE", "mysql": "START TRANSACTION"}.get(
            self.family, "BEGIN"
        )
        event.listen(self._given_engine, "connect", self._on_connect)
        if self.family == "mysql":
            event.listen(self._given_engine, "do_connect", self._bound_connect)
        self._pid = os.getpid()
        self._sweep_lock = threading.Lock()
        self._next_auto_sweep = 0.0  # monotonic time of the next automatic sweep
        self._sweeper: threading.Thread | None = None
        self.auto_sweep_interval = AUTO_SWEEP_INTERVAL
        self.auto_sweep_batch = AUTO_SWEEP_BATCH
        self._table_ready = False
        self._owns_engine = False  # set by from_url: close() then disposes of it
        try:
            self._run(lambda connection: None)  # creates the table when it is missing
        except StoreUnavailable as exc:
            # The application starts; the first call that reaches the database creates it.
            log.warning("session table not checked yet (the database is unreachable): %s", exc)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        table: str = DEFAULT_TABLE,
        timeout: float = 1.0,
        pool_size: int = 10,
    ) -> SQLStore:
        """A store on its own engine and pool, every wait bounded by ``timeout``."""
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size!r}")
        try:
            parsed = make_url(url)
        except sa_exc.ArgumentError as exc:
            raise ValueError(f"not an SQLAlchemy database URL: {exc}") from None
        try:
            engine = _engine_for_url(parsed, timeout, pool_size)
        except (sa_exc.NoSuchModuleError, ImportError) as exc:
            raise ValueError(
                f"no SQLAlchemy dialect or driver for {parsed.drivername!r} ({exc}): install "
                "it, e.g. pip install 'psycopg[binary]' or pymysql"
            ) from None
        except sa_exc.ArgumentError as exc:
            raise ValueError(f"bad database URL: {exc}") from None
        try:
            store = cls(engine, table=table, timeout=timeout)
        except BaseException:  # e.g. a table it may not create or upgrade
            engine.dispose()
            raise
        store._owns_engine = True
        return store

    # -- connections -------------------------------------------------------------------

    def _on_connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        """Per new connection: what the store's locking and timeouts rely on."""
        ms = max(int(self.timeout * 1000), 1)
        cursor = dbapi_connection.cursor()
        try:
            if self.family == "sqlite":
                cursor.execute(f"PRAGMA busy_timeout = {ms}")
                cursor.execute("PRAGMA journal_mode = WAL")  # readers never wait for a writer
            elif self.family == "mysql":
                cursor.execute(
                    f"SET SESSION innodb_lock_wait_timeout = {max(math.ceil(self.timeout), 1)}"
                )
                # MariaDB only (MySQL skips the versioned comment).
                cursor.execute(f"/*M!100108 SET SESSION max_statement_time = {self.timeout} */")
            elif self.family == "postgresql":
                # Server-side bounds of every statement and lock wait, and of a
                # transaction left open by a client that died or froze mid-way.
                cursor.execute(f"SET statement_timeout = {ms}")
                cursor.execute(f"SET lock_timeout = {ms}")
                cursor.execute(f"SET idle_in_transaction_session_timeout = {max(5 * ms, 5000)}")
        finally:
            cursor.close()
        if self.family == "postgresql" and not getattr(dbapi_connection, "autocommit", True):
            dbapi_connection.commit()  # the SETs above opened a transaction
        if self.family == "mysql" and hasattr(dbapi_connection, "_read_timeout"):
            # pymysql: the handshake had the budget's bound (see _bound_connect); the
            # connection's later reads and writes get the configured one again.
            dbapi_connection._read_timeout = self.timeout + _WATCHDOG_GRACE
            dbapi_connection._write_timeout = self.timeout + _WATCHDOG_GRACE

    def _bound_connect(
        self, dialect: Any, connection_record: Any, cargs: Any, cparams: dict[str, Any]
    ) -> None:
        # pymysql: inside a request, connecting gets only what the budget has left. The
        # dict is shared by all connects of the engine, so it is set every time.
        budget = deadline.current()
        wait = self.timeout if budget is None else budget.wait(self.timeout)
        wait = max(wait or self.timeout, deadline.MIN_WAIT)
        cparams["connect_timeout"] = wait
        # The handshake's reads and writes too (reset for later use in _on_connect).
        cparams["read_timeout"] = cparams["write_timeout"] = wait + _WATCHDOG_GRACE

    def _run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on a connection of ours, within the time bound of one call."""
        budget = deadline.current()
        if budget is not None and budget.remaining() <= 0:
            raise StoreUnavailable("sql: the request's store budget is spent")
        if self._pid != os.getpid():
            # Forked: the inherited connections belong to the parent (not closed here).
            self.engine.dispose(close=False)
            self._pid = os.getpid()
        if budget is None:
            return self._attempts(work, self.timeout + _WATCHDOG_GRACE)
        with budget.spending():
            return self._attempts(work, budget.remaining())

    def _attempts(self, work: Callable[[Connection], T], limit: float) -> T:
        ends = time.monotonic() + limit
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                connection = self.engine.connect()
            except sa_exc.SQLAlchemyError as exc:
                if _is_outage(exc):
                    raise StoreUnavailable(_describe(exc)) from exc
                raise
            fired = False
            try:
                cut = _cutter(connection.connection.dbapi_connection)
                watch = None
                if cut is not None:
                    watch = _WATCHDOG.arm(max(ends - time.monotonic(), deadline.MIN_WAIT), cut)
                # SQLite's busy wait does not see an interrupt: it gets the bound itself.
                busy = self.family == "sqlite" and limit < self.timeout
                try:
                    if busy:
                        self._busy_timeout(connection, ends - time.monotonic())
                    if not self._table_ready:
                        self._ensure_table(connection)
                    return work(connection)
                finally:
                    fired = watch is not None and _WATCHDOG.disarm(watch)
                    if busy and not fired:
                        self._busy_timeout(connection, self.timeout)
            except BaseException as exc:
                # Whatever state it is in (a transaction open, a cut socket), this
                # connection is not given out again; the server rolls back when it closes.
                connection.invalidate()
                if fired:
                    raise StoreUnavailable(f"sql: no answer within {limit:.3f} s") from exc
                if _is_deadlock(exc) and attempt < DEADLOCK_ATTEMPTS and time.monotonic() < ends:
                    log.info("sql: retrying after %s", _describe(exc))
                    continue
                if _is_outage(exc):
                    raise StoreUnavailable(_describe(exc)) from exc
                raise
            finally:
                connection.close()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _busy_timeout(connection: Connection, seconds: float) -> None:
        # In-process (no round trip), on the driver's connection: not a statement of ours.
        ms = max(int(seconds * 1000), 1)
        connection.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            f"PRAGMA busy_timeout = {ms}"
        )

    @contextlib.contextmanager
    def _transaction(self, connection: Connection) -> Iterator[None]:
        # The connection is in autocommit mode: the transaction is ours to open and end.
        # On an error, _attempts discards the connection, which rolls it back.
        connection.exec_driver_sql(self._begin)
        yield
        connection.exec_driver_sql("COMMIT")

    def _ensure_table(self, connection: Connection) -> None:
        try:
            self.metadata.create_all(connection, checkfirst=True)
        except sa_exc.DBAPIError:
            # Another process created it between the check and the CREATE.
            if not sa_inspect(connection).has_table(self.table.name):
                raise
        self._add_missing_columns(connection)
        self._table_ready = True

    def _missing_columns(self, connection: Connection) -> builtins.list[Column[Any]]:
        present = {
            column["name"] for column in sa_inspect(connection).get_columns(self.table.name)
        }
        return [self.table.c[name] for name in ADDED_COLUMNS if name not in present]

    def _add_missing_columns(self, connection: Connection) -> None:
        """Upgrade a table made by an earlier release: ``ALTER TABLE ... ADD COLUMN`` of
        each nullable column it lacks. Its rows read as they did (NULL: no tombstone), so
        no session ends; an earlier release's processes, which name their columns, keep
        working beside this one during a rolling upgrade."""
        missing = self._missing_columns(connection)
        if not missing:
            return
        dialect = connection.dialect
        table = dialect.identifier_preparer.format_table(self.table)
        if self.family == "mysql":
            # The metadata lock waits lock_wait_timeout (a year by default) behind open
            # transactions on the table, and every later statement on it waits behind
            # the ALTER: bound that wait as every other one is.
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

    # -- the protocol ------------------------------------------------------------------

    @staticmethod
    def _row(row: Any) -> Session:
        """A session from a row that carries the cutoff: one created at or before it
        reads as the "revoked" tombstone that revoke_everyone made of it."""
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

    def _pk(self, key_digest: str, session_id: str) -> tuple[Any, Any]:
        c = self.table.c
        return c.key_digest == key_digest, c.session_id == session_id

    @functools.cached_property
    def _cutoff(self) -> Any:
        """The revoke_everyone cutoff (NULL when there is none), as a scalar subquery:
        a primary-key read inside the statement that needs it, not a round trip."""
        everyone = self.table.alias("everyone")
        c = everyone.c
        return (
            select(c.created_ms)
            .where(c.key_digest == CUTOFF_DIGEST, c.session_id == CUTOFF_ID)
            .scalar_subquery()
        )

    @functools.cached_property
    def _cutoff_in_write(self) -> Any:
        """The cutoff inside an UPDATE or DELETE of the table: MySQL refuses a subquery on
        the table being changed (error 1093) unless it reads a derived table that is
        materialised, which LIMIT ensures. MariaDB accepts both."""
        if self.family != "mysql":
            return self._cutoff
        everyone = self.table.alias("everyone")
        c = everyone.c
        derived = (
            select(c.created_ms)
            .where(c.key_digest == CUTOFF_DIGEST, c.session_id == CUTOFF_ID)
            .limit(1)
            .subquery("everyone_derived")
        )
        return select(derived.c.created_ms).scalar_subquery()

    def _not_ended(self, *, in_write: bool) -> builtins.list[Any]:
        """Not a tombstone, and created after the cutoff (when there is one)."""
        c = self.table.c
        cutoff = self._cutoff_in_write if in_write else self._cutoff
        return [c.ended.is_(None), c.created_ms > func.coalesce(cutoff, _NO_CUTOFF)]

    def _live(self, now_ms: int, idle_timeout_ms: int, *, in_write: bool) -> builtins.list[Any]:
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

    @functools.cached_property
    def _get_query(self) -> Any:
        # Built once: the verify path then skips building and keying a statement.
        c = self.table.c
        return select(self.table, self._cutoff.label("cutoff")).where(
            c.key_digest == bindparam("kd"), c.session_id == bindparam("sid")
        )

    def get(self, key_digest: str, session_id: str) -> Session | None:
        query, params = self._get_query, {"kd": key_digest, "sid": session_id}

        def work(connection: Connection) -> Session | None:
            row = connection.execute(query, params).first()
            return None if row is None else self._row(row)

        return self._run(work)

    def list(self, key_digest: str) -> builtins.list[Session]:
        query = select(self.table, self._cutoff.label("cutoff")).where(
            self.table.c.key_digest == key_digest
        )
        return self._run(lambda connection: [self._row(r) for r in connection.execute(query)])

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        c = self.table.c
        # Never a tombstone, nor a session the cutoff ended.
        pk = (*self._pk(key_digest, session_id), *self._not_ended(in_write=True))
        # Written only if last_seen_ms >= stored + max(min_interval_ms, 1).
        due = c.last_seen_ms <= last_seen_ms - max(min_interval_ms, 1)
        if self.family == "mysql":
            # Row count = rows matched (CLIENT.FOUND_ROWS): 1 while the session exists.
            stmt = (
                update(self.table)
                .where(*pk)
                .values(last_seen_ms=case((due, last_seen_ms), else_=c.last_seen_ms))
            )
            return self._run(lambda connection: connection.execute(stmt).rowcount > 0)
        conditional = update(self.table).where(*pk, due).values(last_seen_ms=last_seen_ms)
        if self.family == "postgresql":
            changed = conditional.returning(literal(1).label("touched")).cte("touched")
            found = select(literal(1).label("found")).where(*pk)
            query = select(or_(select(changed).exists(), found.exists()))
            return self._run(lambda connection: bool(connection.execute(query).scalar()))
        present = select(literal(1)).where(*pk)

        def work(connection: Connection) -> bool:
            if connection.execute(conditional).rowcount:
                return True
            return connection.execute(present).first() is not None  # too recent, or gone

        return self._run(work)

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
        t, c = self.table, self.table.c
        where = [*self._pk(key_digest, session_id)]
        if token_digest is not None:
            where.append(c.token_digest == token_digest)
        if key is not None:
            where.append(c.session_key == key)
        if tombstone:
            # Only a live session becomes a tombstone, so the row count tells whether
            # one was live (on MySQL: rows matched, which are the same).
            stmt = (
                update(t)
                .where(*where, *self._live(now_ms, idle_timeout_ms, in_write=True))
                .values(self._tombstone("revoked", now_ms))
            )
            return self._run(lambda connection: connection.execute(stmt).rowcount > 0)
        times = (c.created_ms, c.expires_ms, c.last_seen_ms, c.ended)

        def live(rows: Sequence[Any]) -> bool:
            return any(_row_is_live(r, r.cutoff, now_ms, idle_timeout_ms) for r in rows)

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
    ) -> builtins.list[str]:
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

        def work(connection: Connection) -> builtins.list[str]:
            tombstones = update(t).where(*live).values(values).returning(c.session_id)
            if self.family == "postgresql":  # one statement: the DELETE as a WITH clause
                stmt = tombstones.add_cte(delete(t).where(*dead).cte("dead"))
                return builtins.list(connection.execute(stmt).scalars())
            with self._transaction(connection):
                if connection.dialect.update_returning:  # SQLite
                    connection.execute(delete(t).where(*dead))
                    return builtins.list(connection.execute(tombstones).scalars())
                # MariaDB/MySQL: no UPDATE ... RETURNING; the rows are sorted in Python.
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
                    if _row_is_live(r, r.cutoff, now_ms, idle_timeout_ms):
                        ended.append(r.session_id)
                    elif r.cutoff is None or r.created_ms > r.cutoff:
                        deleted.append(r.session_id)
                mine = c.key_digest == key_digest
                if deleted:
                    connection.execute(delete(t).where(mine, c.session_id.in_(deleted)))
                if ended:
                    connection.execute(
                        update(t).where(mine, c.session_id.in_(ended)).values(values)
                    )
            return ended

        return self._run(work)

    def revoke_everyone(self, *, now_ms: int) -> None:
        """Set the cutoff to ``now_ms`` unless it is later already: one upsert of the
        cutoff row, whatever the number of sessions."""
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
    ) -> builtins.list[str]:
        t, c = self.table, self.table.c
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
        if self.family != "sqlite":  # SQLite: BEGIN IMMEDIATE already holds the write lock
            read = read.with_for_update()
        lock = select(func.pg_advisory_xact_lock(_advisory_key(t.name, key_digest)))
        # MariaDB lock names are server-wide, at most 64 characters.
        lock_name = f"pyramid_jeff:{_advisory_key(t.name, key_digest):x}"
        row = {
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

        def work(connection: Connection) -> builtins.list[str] | None:
            if self.family == "mysql":
                # A named lock per key, held across the transaction: an empty key has no
                # row for FOR UPDATE to lock, and gap locks let concurrent first logins
                # deadlock. A failed call drops the connection, which frees the lock.
                wait = max(ends_wait(), deadline.MIN_WAIT)
                if connection.execute(select(func.get_lock(lock_name, wait))).scalar() != 1:
                    raise StoreUnavailable("sql: the key's login lock was not granted in time")
            ended = self._locked_create(connection, lock, read, row, now_ms, plan)
            if self.family == "mysql":
                connection.execute(select(func.release_lock(lock_name)))
            return ended

        def plan(stored: Sequence[Any], cutoff: int | None) -> _Plan | None:
            return self._housekeeping(
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

        def ends_wait() -> float:
            budget = deadline.current()
            return self.timeout if budget is None else min(self.timeout, budget.remaining())

        ended = self._run(work)
        if ended is None:
            raise TooManySessions()  # the manager adds the key and the cap
        # Only rows past their absolute lifetime: whether a row is dead of idleness
        # depends on the idle timeout of whoever reads it, and applications sharing the
        # table may not share theirs. Idle-dead rows go when their lifetime ends, or with
        # an explicit sweep(now_ms, idle_timeout_ms).
        self._maybe_auto_sweep(now_ms, 0)
        return ended

    def _locked_create(
        self,
        connection: Connection,
        lock: Any,
        read: Any,
        row: dict[str, Any],
        now_ms: int,
        plan: Callable[[Sequence[Any], int | None], _Plan | None],
    ) -> builtins.list[str] | None:
        """The login's transaction; ``None`` (rolled back, nothing written) when the key
        is full of live sessions and eviction is not allowed."""
        t, c = self.table, self.table.c
        # The connection is in autocommit mode: the transaction is ours to open and end.
        # On an error, _attempts discards the connection, which rolls it back.
        connection.exec_driver_sql(self._begin)
        if self.family == "postgresql":
            connection.execute(lock)  # its own statement: the read's snapshot follows it
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

    @staticmethod
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
        drop: builtins.list[str] = []
        ended: builtins.list[str] = []
        if replace_id is not None and replace_token_digest is not None:
            for r in stored:
                if r.session_id == replace_id and hmac.compare_digest(
                    bytes(r.token_digest), replace_token_digest
                ):
                    drop.append(replace_id)
                    if _row_is_live(r, cutoff, now_ms, idle_timeout_ms):
                        ended.append(replace_id)
        # Only this key's sessions count and are evicted (two keys' digests may collide).
        mine = [r for r in stored if r.session_key == key and r.session_id not in drop]
        if len(mine) < max_sessions:
            return drop, [], ended
        alive = []
        for r in mine:
            if _row_is_live(r, cutoff, now_ms, idle_timeout_ms):
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

    # -- the sweep ---------------------------------------------------------------------

    def sweep(
        self,
        now_ms: int,
        idle_timeout_ms: int,
        *,
        batch: int = 500,
        max_batches: int | None = None,
    ) -> int:
        """Delete dead rows (expired, or idle past ``idle_timeout_ms`` when it is > 0) in
        batches of at most ``batch`` rows, each its own short transaction; stop after
        ``max_batches`` batches or when none is left. Returns the rows deleted.

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
        """One batch: (rows deleted, whether the batch was full: more may be left)."""
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

    # -- for operators -----------------------------------------------------------------

    def stats(self) -> dict[str, int | str]:
        """What the table holds: one statement (a count of its rows, so a scan of its
        primary key; nothing per key)."""
        c = self.table.c
        query = select(func.count(), func.count(c.ended), self._cutoff).select_from(self.table)
        rows, tombstones, cutoff = self._run(lambda connection: connection.execute(query).one())
        dialect = self.engine.dialect
        facts: dict[str, int | str] = {
            "backend": "sql",
            "dialect": "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name,
            "table": self.table.name,
            # Sessions and tombstones, not the cutoff's row.
            "records": int(rows) - (cutoff is not None),
            "tombstones": int(tombstones),
        }
        if cutoff is not None:
            facts["revoked_everyone_before_ms"] = int(cutoff)
        return facts

    def close(self) -> None:
        sweeper = self._sweeper
        if sweeper is not None:
            sweeper.join(self.timeout + _WATCHDOG_GRACE)
        event.remove(self._given_engine, "connect", self._on_connect)
        if self.family == "mysql":
            event.remove(self._given_engine, "do_connect", self._bound_connect)
        if self._owns_engine:  # an engine the application gave is the application's
            self.engine.dispose()

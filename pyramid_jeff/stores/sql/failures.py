"""What a failed call means. A database that cannot answer now (connection refused or cut,
pool exhausted, time out, lock wait timeout, deadlock after the retries, read-only
server) is :class:`~pyramid_jeff.StoreUnavailable`; a programming error (a wrong table,
bad data) propagates as itself. Nothing is retried silently except a deadlock or a
serialization failure."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

_DEADLOCK_SQLSTATES = ("40P01", "40001")  # deadlock detected, serialization failure
_MYSQL_DEADLOCK = 1213
_MYSQL_UNAVAILABLE = (1205, 1290, 1836, 1969, 3024)  # lock wait, read-only, statement time


def _mysql_errno(exc: sa_exc.DBAPIError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_deadlock(exc: BaseException) -> bool:
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _DEADLOCK_SQLSTATES:
        return True
    return _mysql_errno(exc) == _MYSQL_DEADLOCK


def is_outage(exc: BaseException) -> bool:
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


def describe(exc: BaseException) -> str:
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    detail = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"sql: {type(cause).__name__}: {detail}"

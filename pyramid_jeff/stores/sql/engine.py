"""The engine and pool of a store made from a URL (:meth:`SQLStore.from_url`): every
operation runs on a connection of its own pool in autocommit mode, so a single statement
is its own transaction and costs one round trip. The waits it bounds by ``timeout``: the
wait for a free connection (``pool_size`` connections, no overflow; inside a request, what
the budget has left) and connecting (pymysql ``connect_timeout``; libpq/psycopg
``connect_timeout``, whole seconds, at least 2: psycopg rounds anything lower up to 2)."""

from __future__ import annotations

import inspect
import math
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.pool import QueuePool

from ... import deadline
from .watchdog import WATCHDOG_GRACE


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
    return "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters


def family(dialect_name: str) -> str:
    """The dialect's family: ``"mysql"`` for MariaDB and MySQL, else the dialect's name."""
    return "mysql" if dialect_name in ("mysql", "mariadb") else dialect_name


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    kind = family(url.get_backend_name())
    if kind == "postgresql":
        # psycopg reads whole seconds and rounds anything below 2 up to 2.
        return {"connect_timeout": max(2, math.ceil(timeout))}
    if kind == "mysql":
        return {
            "connect_timeout": timeout,
            "read_timeout": timeout + WATCHDOG_GRACE,
            "write_timeout": timeout + WATCHDOG_GRACE,
        }
    if kind == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise ValueError(
                "an in-memory SQLite database is private to one connection: use memory:// "
                "for an in-process store, or a file (sqlite:///path.db)"
            )
        return {"timeout": timeout, "check_same_thread": False}
    return {}


def engine_for_url(url: URL, timeout: float, pool_size: int) -> Engine:
    options: dict[str, Any] = {
        "poolclass": _BudgetedPool,
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": timeout,
        "pool_recycle": 3600,  # MariaDB closes connections idle past wait_timeout (8 h)
        "pool_reset_on_return": None,  # autocommit: nothing to roll back
        "isolation_level": "AUTOCOMMIT",
        "connect_args": _connect_args(url, timeout),
    }
    if _supports_skip_autocommit_rollback():
        options["skip_autocommit_rollback"] = True
    return create_engine(url, **options)

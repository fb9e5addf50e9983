"""Fresh SQL databases for tests: one per test, dropped afterwards.

PostgreSQL (``postgres`` on 127.0.0.1:5432, trust auth) and MariaDB (``root`` on
127.0.0.1:3306, no password) must be running (SQLite needs only a file: conftest's
``sqlite_url``). Each helper
is a context manager yielding the SQLAlchemy URL of an empty database, and raises
:class:`DatabaseUnavailable` (with the reason) when the server cannot be reached, so a
fixture can skip or fail. Hosts and ports can be moved with ``JEFF_PG_HOST``,
``JEFF_PG_PORT``, ``JEFF_MARIADB_HOST`` and ``JEFF_MARIADB_PORT``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

PG_HOST = os.environ.get("JEFF_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("JEFF_PG_PORT", "5432"))
MARIADB_HOST = os.environ.get("JEFF_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("JEFF_MARIADB_PORT", "3306"))


class DatabaseUnavailable(Exception):
    """The database server for a test could not be reached (or its driver is missing)."""


def _name() -> str:
    return f"jeff_t_{secrets.token_hex(6)}"


@contextlib.contextmanager
def postgresql_database() -> Iterator[str]:
    """A new database on the local PostgreSQL; ``DROP ... WITH (FORCE)`` at the end."""
    try:
        import psycopg
    except ImportError as exc:
        raise DatabaseUnavailable(f"psycopg is not installed: {exc}") from None
    try:
        admin = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres",
            autocommit=True, connect_timeout=5,
        )  # fmt: skip
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT}: {exc}") from None
    name = _name()
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@contextlib.contextmanager
def mariadb_database() -> Iterator[str]:
    """A new database on the local MariaDB (utf8mb4); dropped at the end."""
    try:
        import pymysql
    except ImportError as exc:
        raise DatabaseUnavailable(f"pymysql is not installed: {exc}") from None
    try:
        admin = pymysql.connect(
            host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="",
            autocommit=True, connect_timeout=5,
        )  # fmt: skip
    except pymysql.MySQLError as exc:
        raise DatabaseUnavailable(f"MariaDB at {MARIADB_HOST}:{MARIADB_PORT}: {exc}") from None
    name = _name()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    try:
        yield f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}/{name}?charset=utf8mb4"
    finally:
        # A connection of its own: the test may have outlived the first one's timeouts.
        admin = pymysql.connect(
            host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="",
            autocommit=True, connect_timeout=5,
        )  # fmt: skip
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()

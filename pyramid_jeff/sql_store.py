"""``pyramid_jeff.sql_store``, an import path applications use (Alembic imports its
``metadata`` from here): the store is :mod:`pyramid_jeff.stores.sql` (extra
``pyramid_jeff[sql]``)."""

from .stores.sql import SQLStore, jeff_sessions, make_table, metadata

__all__ = ["SQLStore", "jeff_sessions", "make_table", "metadata"]

"""Session stores: the protocol every store implements (:mod:`.protocol`) and one
module per store. Memcached and SQL need their extras (``pyramid_jeff[memcached]``,
``pyramid_jeff[sql]``), so they are imported from their own modules only."""

from .memory import MemoryStore
from .protocol import STORE_METHODS, SessionStore
from .redis import RedisStore

__all__ = ["STORE_METHODS", "MemoryStore", "RedisStore", "SessionStore"]

"""``pyramid_jeff.redis_store``, an import path applications use: the store is
:mod:`pyramid_jeff.stores.redis`."""

from .stores.redis import RedisStore

__all__ = ["RedisStore"]

"""``pyramid_jeff.memcached_store``, an import path applications use: the store is
:mod:`pyramid_jeff.stores.memcached` (extra ``pyramid_jeff[memcached]``)."""

from .stores.memcached import MemcachedStore

__all__ = ["MemcachedStore"]

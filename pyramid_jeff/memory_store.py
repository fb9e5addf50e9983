"""``pyramid_jeff.memory_store``, an import path applications use: the store is
:mod:`pyramid_jeff.stores.memory`."""

from .stores.memory import MemoryStore

__all__ = ["MemoryStore"]

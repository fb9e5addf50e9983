"""``pyramid_jeff.store``, an import path applications use: the protocol is
:mod:`pyramid_jeff.stores.protocol`."""

from .stores.protocol import STORE_METHODS, SessionStore

__all__ = ["STORE_METHODS", "SessionStore"]

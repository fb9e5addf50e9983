"""Exceptions that reach applications."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The session store could not answer (connection refused, timeout, read-only replica).

    Raised instead of pretending the user is logged out: a request that needs the
    session fails closed with a 503 (see :func:`pyramid_jeff.views.store_unavailable_view`),
    and nothing is deleted or cleared.
    """

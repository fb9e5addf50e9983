"""Exceptions that reach applications."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The session store could not answer (connection refused, timeout, read-only replica).

    Raised instead of pretending the user is logged out: a request that needs the
    session fails closed with a 503 (see :func:`pyramid_jeff.views.store_unavailable_view`),
    and nothing is deleted or cleared.
    """


class TooManySessions(Exception):
    """``remember()`` refused a login: the key already holds ``jeff.max_sessions`` live
    sessions and ``jeff.max_sessions_policy = reject``. Nothing was stored.

    ``key`` is the session key, ``max_sessions`` the cap. A login view catches it to say
    "sign out of another device first" (the user's devices are ``request.jeff.sessions(key)``).
    """

    def __init__(self, key: str = "", max_sessions: int = 0) -> None:
        super().__init__(
            f"{key!r} already holds {max_sessions} live sessions" if key else "too many sessions"
        )
        self.key = key
        self.max_sessions = max_sessions

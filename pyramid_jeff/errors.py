"""Exceptions that reach applications."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPForbidden


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


class ReauthenticationRequired(HTTPForbidden):  # type: ignore[misc]  # pyramid is untyped
    """A ``jeff_recent_login`` view refused a session that logged in too long ago.

    An ``HTTPForbidden``, handled by an exception view of its own: pyramid_jeff's
    (to ``jeff.login_url`` with ``next`` and ``jeff_reason=reauthenticate``; 401 for
    XHR/JSON), or ``jeff.redirect`` when set, unless the application registers one
    for it (``config.add_exception_view(view, context=ReauthenticationRequired)``).
    """

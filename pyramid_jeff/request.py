"""Per-request state: what our cookie said and what became of it.

Kept on the request object (not in the WSGI environ, which pyramid_retry hands to every
attempt of a request), so the tween can tell, without creating anything, whether this
request touched the session at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cookies import CookieProfile, cookie_values
from .credentials import Credential
from .errors import StoreUnavailable
from .manager import SessionManager
from .session import Session

if TYPE_CHECKING:
    from pyramid.request import Request

STATE_KEY = "pyramid_jeff.state"
# Set by the tween on requests it handles: their logins are settled, and their
# last_seen refreshed, once the response is known (see the tween).
SETTLED_BY_TWEEN = "pyramid_jeff.settled_by_tween"
# Set by a jeff_passive view: its request leaves last_seen as it was.
PASSIVE = "pyramid_jeff.passive"
# In the registry when some view is jeff_passive; then the tween sets DEFER_TOUCH on
# each request, and verify leaves the last_seen refresh for after the view.
HAS_PASSIVE_VIEWS = "pyramid_jeff.has_passive_views"
DEFER_TOUCH = "pyramid_jeff.defer_touch"
# Set by a jeff_recent_login view whose session logged in too long ago.
REAUTHENTICATE = "pyramid_jeff.reauthenticate"
# Longest Authorization header value read as a bearer credential: ours are ~90 bytes.
MAX_BEARER = 256


class RequestState:
    __slots__ = (
        "bearer",
        "cookie",
        "cookie_written",
        "created",
        "credential",
        "defer_touch",
        "duplicates",
        "end_reason",
        "error",
        "handed_out",
        "identity",
        "keys",
        "loaded",
        "principals",
        "replaced",
        "resolving",
        "session",
        "touch_due",
    )

    def __init__(
        self,
        cookie: CookieProfile,
        credential: Credential | None,
        duplicates: tuple[Credential, ...] = (),
        *,
        bearer: bool = False,
        defer_touch: bool = False,
    ) -> None:
        self.cookie = cookie
        # The one well-formed cookie of ours; None when absent, duplicated or malformed.
        self.credential = credential
        # When the header carried our cookie more than once: each well-formed copy. None
        # authenticates (we cannot tell which one the browser meant), but a login or a
        # logout ends them all, since this browser holds every one.
        self.duplicates = duplicates
        # The credential came in an Authorization header, not a cookie.
        self.bearer = bearer
        # last_seen is refreshed once the view has answered (the tween), so that a
        # jeff_passive view, known only once the view is found, can skip it.
        self.defer_touch = defer_touch
        self.touch_due = False
        # Why the credential proves no live session (see SessionManager.check).
        self.end_reason: str | None = None
        # Session id -> key of the sessions this request verified or created: ending
        # them later needs no read to tell subscribers whose they were.
        self.keys: dict[str, str] = {}
        # Sessions remember() created in this request whose cookie may not reach the
        # browser (the view may still fail), and those they replace, ended only once it
        # does: see JeffSecurityPolicy.settle_logins.
        self.created: list[Credential] = []
        self.replaced: list[Credential] = []
        # Created sessions whose credential went to an API client (bearer_token()).
        self.handed_out: list[Credential] = []
        self.loaded = False
        self.session: Session | None = None
        self.error: StoreUnavailable | None = None
        self.cookie_written = False  # remember()/forget() produced our Set-Cookie
        self.identity: Any = None
        self.principals: list[str] | None = None  # None until identity is resolved
        self.resolving = False  # the identity loader or groupfinder is running

    def load(self, manager: SessionManager) -> Session | None:
        """Verify the credential once; a store failure is remembered and raised again."""
        if self.error is not None:
            raise self.error
        if not self.loaded:
            if self.credential is not None:
                try:
                    self.session, self.end_reason = manager.check(
                        self.credential, touch=not self.defer_touch
                    )
                except StoreUnavailable as exc:
                    self.error = exc
                    raise
                if self.session is not None:
                    self.keys[self.session.id] = self.session.key
                    self.touch_due = manager.touch_due(self.session)
            self.loaded = True
        return self.session

    def replace(self, session: Session | None, credential: Credential | None) -> None:
        """After remember()/forget(): this request now carries ``session``."""
        if session is not None:
            self.keys[session.id] = session.key
        self.session = session
        self.credential = credential
        self.duplicates = ()
        self.loaded = True
        self.cookie_written = True
        self.touch_due = False
        self.end_reason = None
        self.bearer = False
        self.identity = None
        self.principals = None


def find_state(request: Request) -> RequestState | None:
    """This request's state, or None when nothing has asked for the session yet."""
    state: RequestState | None = request.__dict__.get(STATE_KEY)
    return state


def request_state(
    request: Request, cookie: CookieProfile, *, bearer: bool = False
) -> RequestState:
    """This request's state, made from its cookie (and, with ``bearer``, its
    ``Authorization: Bearer`` header) on first use."""
    state = find_state(request)
    if state is None:
        environ = request.environ
        defer_touch = bool(request.__dict__.get(DEFER_TOUCH))
        values = cookie_values(environ.get("HTTP_COOKIE"), cookie.name)
        authorization = environ.get("HTTP_AUTHORIZATION", "") if bearer else ""
        if authorization[:7].lower() == "bearer ":
            # Never both: a request that carries a cookie and a bearer credential is
            # refused as ambiguous (anonymous), as is any malformed header.
            credential = None if values else _bearer_credential(authorization)
            state = RequestState(cookie, credential, bearer=True, defer_touch=defer_touch)
        elif len(values) <= 1:
            credential = Credential.decode(values[0]) if values else None
            state = RequestState(cookie, credential, defer_touch=defer_touch)
        else:
            decoded = (Credential.decode(value) for value in values)
            duplicates = tuple(c for c in decoded if c is not None)
            state = RequestState(cookie, None, duplicates, defer_touch=defer_touch)
        request.__dict__[STATE_KEY] = state
    return state


def _bearer_credential(header: str) -> Credential | None:
    value = header[7:].strip(" ")
    if len(header) > MAX_BEARER or not value:
        return None
    return Credential.decode(value)

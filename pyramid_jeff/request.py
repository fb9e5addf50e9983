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
# Set by the tween on requests it handles: their logins are settled once the response
# is known (see JeffSecurityPolicy.settle_logins).
SETTLED_BY_TWEEN = "pyramid_jeff.settled_by_tween"


class RequestState:
    __slots__ = (
        "cookie",
        "cookie_written",
        "created",
        "credential",
        "duplicates",
        "error",
        "identity",
        "loaded",
        "principals",
        "replaced",
        "resolving",
        "session",
    )

    def __init__(
        self,
        cookie: CookieProfile,
        credential: Credential | None,
        duplicates: tuple[Credential, ...] = (),
    ) -> None:
        self.cookie = cookie
        # The one well-formed cookie of ours; None when absent, duplicated or malformed.
        self.credential = credential
        # When the header carried our cookie more than once: each well-formed copy. None
        # authenticates (we cannot tell which one the browser meant), but a login or a
        # logout ends them all, since this browser holds every one.
        self.duplicates = duplicates
        # Sessions remember() created in this request whose cookie may not reach the
        # browser (the view may still fail), and those they replace, ended only once it
        # does: see JeffSecurityPolicy.settle_logins.
        self.created: list[Credential] = []
        self.replaced: list[Credential] = []
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
                    self.session = manager.verify(self.credential)
                except StoreUnavailable as exc:
                    self.error = exc
                    raise
            self.loaded = True
        return self.session

    def replace(self, session: Session | None, credential: Credential | None) -> None:
        """After remember()/forget(): this request now carries ``session``."""
        self.session = session
        self.credential = credential
        self.duplicates = ()
        self.loaded = True
        self.cookie_written = True
        self.identity = None
        self.principals = None


def find_state(request: Request) -> RequestState | None:
    """This request's state, or None when nothing has asked for the session yet."""
    state: RequestState | None = request.__dict__.get(STATE_KEY)
    return state


def request_state(request: Request, cookie: CookieProfile) -> RequestState:
    state = find_state(request)
    if state is None:
        values = cookie_values(request.environ.get("HTTP_COOKIE"), cookie.name)
        if len(values) <= 1:
            state = RequestState(cookie, Credential.decode(values[0]) if values else None)
        else:
            decoded = (Credential.decode(value) for value in values)
            state = RequestState(cookie, None, tuple(c for c in decoded if c is not None))
        request.__dict__[STATE_KEY] = state
    return state

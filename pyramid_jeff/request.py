"""Per-request state: what our cookie said and what became of it. :class:`RequestState`
is its one owner: the policy, the views and the tween change it through its methods.

Kept on the request object (not in the WSGI environ, which pyramid_retry hands to every
attempt of a request), so the tween can tell, without creating anything, whether this
request touched the session at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pyramid.authorization import Authenticated, Everyone

from .cookies import CookieSpec, cookie_values
from .credentials import Credential, bearer_credential
from .errors import StoreUnavailable
from .manager import SessionManager
from .session import Session

if TYPE_CHECKING:
    from pyramid.request import Request

GroupFinder = Callable[[str, "Request"], Iterable[str] | None]
IdentityLoader = Callable[[Session, "Request"], Any]

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
        cookie: CookieSpec,
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

    def resolve(
        self,
        request: Request,
        manager: SessionManager,
        loader: IdentityLoader | None,
        groupfinder: GroupFinder | None,
    ) -> None:
        """Identity and principals, computed together once per request.

        The loader and the groupfinder may read the request's security API: while the
        loader runs, ``authenticated_userid`` is the session key and ``identity`` is
        ``None``; while the groupfinder runs, ``identity`` is what the loader returned.
        Principals read meanwhile are the ones known so far (no groups yet).
        """
        if self.principals is not None or self.resolving:
            return
        session = self.load(manager)
        self.resolving = True
        try:
            self.identity, self.principals = None, [Everyone]
            if session is None:
                return
            # Provisional answers for re-entrant calls from the loader.
            self.principals = [Everyone, Authenticated, session.key]
            identity = session if loader is None else loader(session, request)
            if identity is None:
                self.principals = [Everyone]
                return
            self.identity = identity
            groups = () if groupfinder is None else groupfinder(session.key, request)
            if groups is None:  # e.g. a disabled account: anonymous
                self.identity, self.principals = None, [Everyone]
            else:
                self.principals = [Everyone, Authenticated, session.key, *groups]
        except BaseException:
            self.identity, self.principals = None, None  # not cached: the next access tries again
            raise
        finally:
            self.resolving = False

    def logged_in(self, session: Session, credential: Credential, *, deferred: bool) -> None:
        """remember() stored ``session``: this request now carries it. ``deferred``: the
        sessions this browser carried end once its cookie is on its way (settle_logins)."""
        if deferred:
            carried = (c for c in (self.credential, *self.duplicates) if c is not None)
            self.created.append(credential)
            self.replaced.extend(c for c in carried if c not in self.replaced)
        self._carry(session, credential)

    def held(self) -> list[Credential]:
        """What this browser holds: its cookie (or every copy of it), and what a login of
        this same request, not yet settled, replaces."""
        return [c for c in (self.credential, *self.duplicates, *self.replaced) if c is not None]

    def logged_out(self) -> None:
        """forget() ended what the browser held: the request is anonymous from here on."""
        self.created, self.replaced = [], []
        self._carry(None, None)

    def hand_out(self) -> Credential | None:
        """The credential of the last login of this request, for an API client
        (bearer_token()): its session is then kept without a cookie."""
        if self.created:
            self.handed_out.append(self.created[-1])
            return self.created[-1]
        if self.credential is not None and self.cookie_written:
            return self.credential  # remember() outside the tween
        return None

    def take_logins(self) -> tuple[list[Credential], list[Credential], list[Credential]]:
        """For settle_logins, once: the sessions created, those they replace, and those
        handed to an API client."""
        created, replaced = self.created, self.replaced
        self.created, self.replaced = [], []
        return created, replaced, self.handed_out

    def take_touch(self) -> bool:
        """Whether the last_seen refresh left for after the view is due (once)."""
        due, self.touch_due = self.touch_due, False
        return due and self.session is not None and self.credential is not None

    def failed(self, exc: StoreUnavailable) -> None:
        """The store failed in this request: the response says nothing of the session."""
        if self.error is None:
            self.error = exc

    def _carry(self, session: Session | None, credential: Credential | None) -> None:
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


def request_state(request: Request, cookie: CookieSpec, *, bearer: bool = False) -> RequestState:
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
            credential = None if values else bearer_credential(authorization)
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

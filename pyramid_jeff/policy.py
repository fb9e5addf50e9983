"""The Pyramid security policy: identity from the login session, ACL permissions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.interfaces import ISecurityPolicy
from zope.interface import implementer

from .cookies import CookieProfile
from .manager import SessionManager
from .request import RequestState, request_state
from .session import Session

if TYPE_CHECKING:
    from pyramid.request import Request

GroupFinder = Callable[[str, "Request"], Iterable[str] | None]
IdentityLoader = Callable[[Session, "Request"], Any]


@implementer(ISecurityPolicy)
class JeffSecurityPolicy:
    """``remember()`` logs in, ``forget()`` logs out, permissions come from ACLs.

    Principals of an authenticated request: ``Everyone``, ``Authenticated``, the session
    key, and whatever ``groupfinder(key, request)`` returns (``None`` from it makes the
    request anonymous). ``request.identity`` is the :class:`~pyramid_jeff.Session`, or
    what ``identity_loader(session, request)`` makes of it (``None``: anonymous).
    """

    def __init__(
        self,
        manager: SessionManager,
        cookie: CookieProfile,
        *,
        groupfinder: GroupFinder | None = None,
        identity_loader: IdentityLoader | None = None,
        csrf_cookie: CookieProfile | None = None,
    ) -> None:
        self.manager = manager
        self.cookie = cookie
        self.groupfinder = groupfinder
        self.identity_loader = identity_loader
        self.csrf_cookie = csrf_cookie
        self.acl = ACLHelper()

    def state(self, request: Request) -> RequestState:
        return request_state(request, self.cookie)

    def session(self, request: Request) -> Session | None:
        """The verified session of ``request`` (what ``request.jeff_session`` returns)."""
        return self.state(request).load(self.manager)

    def _resolve(self, request: Request) -> RequestState:
        """Identity, userid and principals, computed together once per request."""
        state = self.state(request)
        if state.principals is None:
            session = state.load(self.manager)
            identity: Any = session
            principals = [Everyone]
            if session is not None and self.identity_loader is not None:
                identity = self.identity_loader(session, request)
            if session is not None and identity is not None:
                groups = () if self.groupfinder is None else self.groupfinder(session.key, request)
                if groups is None:
                    identity = None  # e.g. a disabled account: anonymous
                else:
                    principals += [Authenticated, session.key, *groups]
            state.identity = identity
            state.principals = principals
        return state

    def identity(self, request: Request) -> Any:
        return self._resolve(request).identity

    def authenticated_userid(self, request: Request) -> str | None:
        state = self._resolve(request)
        if state.identity is None or state.session is None:
            return None
        return state.session.key

    def effective_principals(self, request: Request) -> list[str]:
        principals = self._resolve(request).principals
        assert principals is not None
        return principals

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        return self.acl.permits(context, self.effective_principals(request), permission)

    def remember(self, request: Request, userid: Any, **kw: Any) -> list[tuple[str, str]]:
        """Log ``userid`` in: a new session (and token), the old one ended, one cookie.

        The store is written before this returns; if it cannot be, ``StoreUnavailable``
        propagates and no cookie is issued.
        """
        meta = kw.pop("meta", None)
        if kw:
            raise TypeError(f"remember() got unexpected arguments: {', '.join(sorted(kw))}")
        state = self.state(request)
        session, credential = self.manager.create(
            userid,
            meta=meta,
            ip=request.remote_addr,
            user_agent=request.user_agent,
            replacing=state.credential,
        )
        state.replace(session, credential)
        request.__dict__.pop("jeff_session", None)  # let the reified property see it
        return [self.cookie.set_header(credential.encode(), self.manager.max_age)]

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        """Log out: end the current session in the store and expire the cookie."""
        state = self.state(request)
        if state.credential is not None:
            self.manager.end(state.credential)
        state.replace(None, None)
        request.__dict__.pop("jeff_session", None)
        headers = [self.cookie.expire_header()]
        if self.csrf_cookie is not None:
            # A new anonymous CSRF token after logout, as after login.
            headers.append(self.csrf_cookie.expire_header())
        return headers

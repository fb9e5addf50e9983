"""The Pyramid security policy: identity from the login session, ACL permissions."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pyramid.authorization import ACLHelper, Authenticated
from pyramid.interfaces import ISecurityPolicy
from zope.interface import implementer

from .cookies import CookieSpec
from .credentials import Credential
from .errors import StoreUnavailable, TooManySessions
from .events import EndReason
from .manager import SessionManager
from .privacy import recorded_ip
from .request import (
    SETTLED_BY_TWEEN,
    GroupFinder,
    IdentityLoader,
    RequestState,
    find_state,
    request_state,
)
from .session import Session

if TYPE_CHECKING:
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

log = logging.getLogger(__name__)

# Where includeme keeps the policy it built, whatever the registered ISecurityPolicy.
POLICY_KEY = "pyramid_jeff.policy"


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
        cookie: CookieSpec,
        *,
        groupfinder: GroupFinder | None = None,
        identity_loader: IdentityLoader | None = None,
        csrf_cookie: CookieSpec | None = None,
        persistent: bool = True,
        record_ip: str = "full",
        record_user_agent: bool = True,
        bearer: bool = False,
    ) -> None:
        self.manager = manager
        self.cookie = cookie
        self.groupfinder = groupfinder
        self.identity_loader = identity_loader
        self.csrf_cookie = csrf_cookie
        self.persistent = persistent
        self.record_ip = record_ip
        self.record_user_agent = record_user_agent
        self.bearer = bearer
        self.acl = ACLHelper()

    def state(self, request: Request) -> RequestState:
        return request_state(request, self.cookie, bearer=self.bearer)

    def session(self, request: Request) -> Session | None:
        """The verified session of ``request`` (what ``request.jeff_session`` returns)."""
        return self.state(request).load(self.manager)

    def _resolve(self, request: Request) -> RequestState:
        state = self.state(request)
        state.resolve(request, self.manager, self.identity_loader, self.groupfinder)
        return state

    def identity(self, request: Request) -> Any:
        return self._resolve(request).identity

    def authenticated_userid(self, request: Request) -> str | None:
        state = self._resolve(request)
        if state.session is None or Authenticated not in (state.principals or ()):
            return None
        return state.session.key

    def effective_principals(self, request: Request) -> list[str]:
        principals = self._resolve(request).principals
        assert principals is not None
        return list(principals)

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        return self.acl.permits(context, self.effective_principals(request), permission)

    def remember(
        self,
        request: Request,
        userid: Any,
        *,
        meta: Mapping[str, Any] | None = None,
        max_age: int | None = None,
        persistent: bool | None = None,
        **kw: Any,
    ) -> list[tuple[str, str]]:
        """Log ``userid`` in: a new session (and token), the old one ended, one cookie.

        ``max_age`` is this session's absolute lifetime in seconds (default
        ``jeff.max_age``); ``persistent=False`` makes a browser-session cookie (no
        ``Max-Age``) while the server still ends the session at its ``max_age``
        (default: ``jeff.persistent``). The store is written before this returns; if
        it cannot be, ``StoreUnavailable`` propagates and no cookie is issued.
        """
        if kw:
            raise TypeError(f"remember() got unexpected arguments: {', '.join(sorted(kw))}")
        if persistent is None:
            persistent = self.persistent
        elif not isinstance(persistent, bool):
            raise TypeError(f"persistent must be True or False, not {persistent!r}")
        state = self.state(request)
        # In a request the tween handles, the sessions this browser carried end once the
        # new cookie is on its way (settle_logins): a view that fails after remember()
        # leaves it logged in as before, not logged out. The key may hold one more
        # session meanwhile. Elsewhere (a script), they end at once.
        deferred = bool(request.__dict__.get(SETTLED_BY_TWEEN))
        login = functools.partial(
            self.manager.bind(request).create,
            userid,
            meta=meta,
            ip=recorded_ip(request.remote_addr, self.record_ip),
            user_agent=request.user_agent if self.record_user_agent else None,
            max_age=max_age,
            replacing=None if deferred else state.credential,
        )
        session, credential = self._log_in(state, login) if deferred else login()
        if not deferred:
            for duplicate in state.duplicates:
                self.manager.bind(request).end(duplicate, reason="replaced")
        state.logged_in(session, credential, deferred=deferred)
        lifetime = (session.expires_ms - session.created_ms) // 1000 if persistent else None
        return [self.cookie.set_header(credential.encode(), lifetime)]

    def _log_in(
        self, state: RequestState, login: Callable[..., tuple[Session, Credential]]
    ) -> tuple[Session, Credential]:
        """A login whose carried session ends later (settle_logins): that session, not
        another device, makes room at the cap, but only once it is known live. Anyone
        can forge cookies of a key (its digest is no secret), and those must not raise
        the cap; a read to learn it is made only when the key is full."""
        if state.credential is None:
            return login()
        if state.loaded:
            return login(ending=[state.credential] if state.session else [])
        try:
            return login(evict=False)
        except TooManySessions:
            return login(ending=[state.credential] if state.load(self.manager) else [])

    def settle_logins(self, request: Request, response: Response | None) -> None:
        """After the response is known (``None``: an exception propagates): end the
        sessions that ``remember()`` created but whose cookie is not in ``response``
        (nobody holds their token), and, if one of them is, the sessions the browser
        carried before. Called by the tween; a store failure here is logged, never
        turned into an error page, since the response itself is right."""
        state = find_state(request)
        if state is None or not state.created:
            return
        created, replaced, handed_out = state.take_logins()
        sent = set()
        if response is not None:
            prefix = f"{self.cookie.name}="
            for name, value in response.headerlist:
                if name.lower() == "set-cookie" and value.startswith(prefix):
                    sent.add(value[len(prefix) :].split(";", 1)[0])
        delivered = [c for c in created if c.encode() in sent or c in handed_out]
        # Undelivered: nobody holds its token, as after a logout.
        to_end: dict[Credential, EndReason] = {c: "logout" for c in created if c not in delivered}
        if delivered:
            to_end.update(dict.fromkeys(replaced, "replaced"))
        manager = self.manager.bind(request)
        for credential, reason in to_end.items():
            try:
                manager.end(credential, reason=reason, key=state.keys.get(credential.session_id))
            except StoreUnavailable as exc:
                log.warning("could not end a replaced or undelivered session: %s", exc)

    def bearer_token(self, request: Request) -> str | None:
        """The credential the last ``remember()`` of this request issued, to hand to an
        API client (which sends it as ``Authorization: Bearer <value>``); ``None`` if
        this request logged nobody in. The session is kept even if the response
        carries no cookie."""
        state = find_state(request)
        credential = None if state is None else state.hand_out()
        return None if credential is None else credential.encode()

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        """Log out: end the current session in the store and expire the cookie."""
        state = self.state(request)
        manager = self.manager.bind(request)
        # Logging out ends at once whatever this browser holds, including a login of
        # this same request not yet settled.
        for credential in state.held():
            manager.end(credential, key=state.keys.get(credential.session_id))
        state.logged_out()
        headers = [self.cookie.expire_header()]
        if self.csrf_cookie is not None:
            # A new anonymous CSRF token after logout, as after login.
            headers.append(self.csrf_cookie.expire_header())
        return headers


def jeff_policy(registry: Registry) -> JeffSecurityPolicy:
    """The pyramid_jeff security policy of an application's registry (also where the
    application registered a policy of its own that delegates to it)."""
    policy = registry.get(POLICY_KEY) or registry.queryUtility(ISecurityPolicy)
    if not isinstance(policy, JeffSecurityPolicy):
        raise LookupError(
            'this application does not use pyramid_jeff: config.include("pyramid_jeff")'
        )
    return policy

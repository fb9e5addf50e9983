"""Make every response agree with the session it was built from.

The tween sits just under ``INGRESS`` (so above ``EXCVIEW`` and above pyramid_tm, whose
user annotation reads the session): it sees the final response, including the ones
exception views render, opens the request's store budget (:mod:`pyramid_jeff.deadline`),
expires a cookie that named a dead session, and turns a
:class:`StoreUnavailable` that escapes another tween into a 503. Logins and cache headers
are settled later, by :func:`response_subscriber`, a ``NewResponse`` subscriber registered
after every other one, since response callbacks and subscribers run after all tweens. A request
that never touched the session costs one dict lookup in each.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyramid.interfaces import ISecurityPolicy

from . import deadline
from .errors import StoreUnavailable
from .manager import SessionManager
from .policy import JeffSecurityPolicy
from .request import (
    DEFER_TOUCH,
    HAS_PASSIVE_VIEWS,
    PASSIVE,
    SETTLED_BY_TWEEN,
    RequestState,
    find_state,
)
from .views import store_unavailable_response

if TYPE_CHECKING:
    from pyramid.events import NewResponse
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

log = logging.getLogger("pyramid_jeff")

Handler = Callable[["Request"], "Response"]
# The request's store budget, kept on the request for response_subscriber.
REQUEST_BUDGET = "pyramid_jeff.store_budget"


def jeff_tween_factory(handler: Handler, registry: Registry) -> Handler:
    policy = registry.queryUtility(ISecurityPolicy)
    settle = policy.settle_logins if isinstance(policy, JeffSecurityPolicy) else None
    # All store waits of one request share one budget (see pyramid_jeff.deadline): the
    # handler below us includes pyramid_tm and exception views.
    budget_seconds = (
        deadline.request_budget(policy.manager.store)
        if isinstance(policy, JeffSecurityPolicy)
        else None
    )
    budget_var = deadline._current
    # Only an app with a jeff_passive view pays for deciding the refresh after the view:
    # a refresh made at the read also stops a request whose session was revoked meanwhile.
    manager = (
        policy.manager
        if isinstance(policy, JeffSecurityPolicy) and registry.get(HAS_PASSIVE_VIEWS)
        else None
    )

    def jeff_tween(request: Request) -> Response:
        if settle is not None:
            request.__dict__[SETTLED_BY_TWEEN] = True
        if manager is not None:
            request.__dict__[DEFER_TOUCH] = True
        budget = None if budget_seconds is None else deadline.Budget(budget_seconds)
        token = None if budget is None else budget_var.set(budget)
        if budget is not None:
            # What is left of it settles the logins, after the tween (response_subscriber).
            request.__dict__[REQUEST_BUDGET] = budget
        try:
            try:
                response = handler(request)
            except StoreUnavailable as exc:
                response = store_unavailable_response(request, exc)
            except BaseException:
                if settle is not None:
                    settle(request, None)  # no cookie will go out: end what remember() made
                raise
            else:
                refresh_last_seen(request, manager)
        finally:
            if token is not None:
                budget_var.reset(token)
        state: RequestState | None = find_state(request)
        if state is None:
            return response
        if state.error is not None:
            return response  # never write anything we could not check
        dead_cookie = (
            state.loaded
            and state.credential is not None
            and state.session is None
            and not state.bearer
        )
        if dead_cookie and not state.cookie_written:
            # Our one well-formed cookie named a dead or revoked session: stop the browser
            # from sending it. Never for a malformed or duplicated one: a copy planted by
            # a sibling subdomain (Domain=, another Path) or an oversized header must not
            # get the genuine cookie deleted.
            response.headerlist.append(state.cookie.expire_header())
        return response

    return jeff_tween


def refresh_last_seen(request: Request, manager: SessionManager | None) -> None:
    """In an app with ``jeff_passive`` views: the ``last_seen`` refresh verify left for
    after the view, unless the view was passive. A session revoked since it was read
    stays dead (the response already built for it goes out, as it would had the
    revocation come a moment later)."""
    state = find_state(request)
    if (
        manager is None
        or state is None
        or not state.touch_due
        or state.session is None
        or state.credential is None
        or request.__dict__.get(PASSIVE)
    ):
        return
    state.touch_due = False
    try:
        manager.touch(state.credential, state.session)
    except StoreUnavailable as exc:
        # The response is right; the next request refreshes last_seen instead.
        log.warning("could not refresh last_seen: %s", exc)


def response_subscriber(policy: JeffSecurityPolicy) -> Callable[[NewResponse], None]:
    """The ``NewResponse`` subscriber that settles a response once nothing else can
    change it (registered after every other one): logins, then cache headers."""

    def settle_response(event: NewResponse) -> None:
        budget = event.request.__dict__.get(REQUEST_BUDGET)
        if budget is None:
            policy.settle_logins(event.request, event.response)
        else:
            # Ending the sessions a login replaced is part of the request: it gets what
            # the request's store budget has left, not a fresh timeout per round trip.
            token = deadline._current.set(budget)
            try:
                policy.settle_logins(event.request, event.response)
            finally:
                deadline._current.reset(token)
        keep_private(event)

    return settle_response


def keep_private(event: NewResponse) -> None:
    """A ``NewResponse`` subscriber, registered after every other one: a response built
    from the session is private, whatever the view, its response callbacks or other
    subscribers made of its headers."""
    state = find_state(event.request)
    if state is not None and (state.loaded or state.error is not None):
        make_private(event.response)


# One Cache-Control directive: a token, optionally = a token or a quoted string (which
# may hold commas, as in private="Set-Cookie, X-A").
_DIRECTIVE = re.compile(r'\s*([^=,\s]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*))?\s*(?:,|$)')
# Directives that let a shared cache store the response.
_SHARED = frozenset({"public", "s-maxage"})
# Shared caches that read their own header instead of Cache-Control: dropped, so they
# fall back to Cache-Control.
_CDN_HEADERS = frozenset({"cdn-cache-control", "surrogate-control"})


def make_private(response: Response) -> None:
    """``Vary: Cookie`` and no shared caching: the body depends on who asked."""
    # One pass over the raw header list: WebOb's header views cost more than this.
    vary: list[str] = []
    cache_control: list[str] = []
    kept: list[tuple[str, str]] = []
    for name, value in response.headerlist:
        lowered = name.lower()
        if lowered == "vary":
            vary.append(value)
        elif lowered == "cache-control":
            cache_control.append(value)
        elif lowered not in _CDN_HEADERS:
            kept.append((name, value))
    vary_tokens = [t.strip() for v in vary for t in v.split(",") if t.strip()]
    if not any(t == "*" or t.lower() == "cookie" for t in vary_tokens):
        vary_tokens.append("Cookie")
    kept.append(("Vary", ", ".join(vary_tokens)))
    directives = _parse_cache_control(", ".join(cache_control))
    names = {name for name, value in directives if value is None}
    if "no-store" not in names:
        # A bare "private" stays; a field-limited one (private="Set-Cookie") lets a
        # shared cache keep the rest, so it goes, with public and s-maxage.
        directives = [
            (name, value)
            for name, value in directives
            if name not in _SHARED and not (name == "private" and value is not None)
        ]
        if "private" not in names:
            directives.insert(0, ("private", None))
    if directives:
        kept.append(("Cache-Control", ", ".join(_directive(n, v) for n, v in directives)))
    response.headerlist[:] = kept


def _parse_cache_control(header: str) -> list[tuple[str, str | None]]:
    directives: list[tuple[str, str | None]] = []
    position = 0
    while position < len(header):
        match = _DIRECTIVE.match(header, position)
        if match is None or match.end() == position:
            position = header.find(",", position + 1)
            if position < 0:
                break
            position += 1
            continue
        directives.append((match.group(1).lower(), match.group(2)))
        position = match.end()
    return directives


def _directive(name: str, value: str | None) -> str:
    return name if value is None else f"{name}={value}"

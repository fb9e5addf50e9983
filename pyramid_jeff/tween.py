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

from . import deadline
from .errors import StoreUnavailable
from .manager import SessionManager
from .policy import POLICY_KEY, JeffSecurityPolicy
from .request import (
    DEFER_TOUCH,
    HAS_PASSIVE_VIEWS,
    PASSIVE,
    SETTLED_BY_TWEEN,
    find_state,
)
from .views import store_unavailable_view

if TYPE_CHECKING:
    from pyramid.events import NewResponse
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

log = logging.getLogger(__name__)

Handler = Callable[["Request"], "Response"]
# The request's store budget, kept on the request for response_subscriber.
REQUEST_BUDGET = "pyramid_jeff.store_budget"


def jeff_tween_factory(handler: Handler, registry: Registry) -> Handler:
    policy = registry.get(POLICY_KEY)
    if not isinstance(policy, JeffSecurityPolicy):
        return handler  # pyramid_jeff's configuration did not run
    # All store waits of one request share one budget (see pyramid_jeff.deadline): the
    # handler below us includes pyramid_tm and exception views.
    budget_seconds = deadline.request_budget(policy.manager.store)
    # Only an app with a jeff_passive view pays for deciding the refresh after the view:
    # a refresh made at the read also stops a request whose session was revoked meanwhile.
    manager = policy.manager if registry.get(HAS_PASSIVE_VIEWS) else None

    def jeff_tween(request: Request) -> Response:
        request.__dict__[SETTLED_BY_TWEEN] = True
        if manager is not None:
            request.__dict__[DEFER_TOUCH] = True
        token = None
        if budget_seconds is not None:
            budget = deadline.Budget(budget_seconds)
            token = deadline.activate(budget)
            # What is left of it settles the logins, after the tween (response_subscriber).
            request.__dict__[REQUEST_BUDGET] = budget
        try:
            response = handler(request)
        except StoreUnavailable as exc:
            response = outage_response(request, exc)
        except BaseException:
            policy.settle_logins(request, None)  # no cookie goes out: end what remember() made
            raise
        else:
            refresh_last_seen(request, manager)
        finally:
            if token is not None:
                deadline.deactivate(token)
        return settle_cookie(request, response)

    return jeff_tween


def outage_response(request: Request, exc: StoreUnavailable) -> Response:
    """The 503 of an outage that reached the tween (from a tween under this one, or an
    exception view that failed in turn): the exception view's, as for an outage in a
    view (the application's own, if it registered one), else ours, should that one read
    the session and fail again."""
    try:
        return request.invoke_exception_view(reraise=True)
    except StoreUnavailable:
        request.exception = exc
        return store_unavailable_view(exc, request)


def settle_cookie(request: Request, response: Response) -> Response:
    """After the view: a store outage is logged and the response left as the exception
    view made it (nothing we could not check is written); a cookie that named a dead
    session is expired."""
    state = find_state(request)
    outage = request.exception if isinstance(request.exception, StoreUnavailable) else None
    if outage is not None:
        log.error("session store unavailable (%s %s): %s", request.method, request.path, outage)
        if state is not None:
            state.failed(outage)
    if state is None or state.error is not None:
        return response
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


def refresh_last_seen(request: Request, manager: SessionManager | None) -> None:
    """In an app with ``jeff_passive`` views: the ``last_seen`` refresh verify left for
    after the view, unless the view was passive. A session revoked since it was read
    stays dead (the response already built for it goes out, as it would had the
    revocation come a moment later)."""
    state = find_state(request)
    if manager is None or state is None or request.__dict__.get(PASSIVE):
        return
    if not state.take_touch():
        return
    assert state.credential is not None and state.session is not None
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
            token = deadline.activate(budget)
            try:
                policy.settle_logins(event.request, event.response)
            finally:
                deadline.deactivate(token)
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

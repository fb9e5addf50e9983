"""The tween: make every response agree with the session it was built from.

Placed just under ``INGRESS`` (so above ``EXCVIEW`` and above pyramid_tm, whose user
annotation reads the session): it sees the final response, including the ones exception
views render, and it turns a :class:`StoreUnavailable` that escapes another tween into
a 503. A request that never touched the session costs one dict lookup here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import StoreUnavailable
from .request import RequestState, find_state
from .views import store_unavailable_response

if TYPE_CHECKING:
    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

Handler = Callable[["Request"], "Response"]


def jeff_tween_factory(handler: Handler, registry: Registry) -> Handler:
    def jeff_tween(request: Request) -> Response:
        try:
            response = handler(request)
        except StoreUnavailable as exc:
            response = store_unavailable_response(request, exc)
        state: RequestState | None = find_state(request)
        if state is None:
            return response
        if state.loaded or state.error is not None:
            _keep_private(response)
        if state.error is not None:
            return response  # never write anything we could not check
        dead_cookie = state.loaded and state.credential is not None and state.session is None
        if dead_cookie and not state.cookie_written:
            # Our one well-formed cookie named a dead or revoked session: stop the browser
            # from sending it. Never for a malformed or duplicated one: a copy planted by
            # a sibling subdomain (Domain=, another Path) or an oversized header must not
            # get the genuine cookie deleted.
            response.headerlist.append(state.cookie.expire_header())
        return response

    return jeff_tween


def _keep_private(response: Response) -> None:
    """``Vary: Cookie`` and no shared caching: the body depends on who asked."""
    # One pass over the raw header list: WebOb's header views cost more than this.
    headerlist = response.headerlist
    vary_at = cache_at = -1
    for index, (name, _) in enumerate(headerlist):
        lowered = name.lower()
        if lowered == "vary":
            vary_at = index
        elif lowered == "cache-control":
            cache_at = index
    if vary_at < 0:
        headerlist.append(("Vary", "Cookie"))
    else:
        vary = headerlist[vary_at][1]
        if "cookie" not in vary.lower() and vary.strip() != "*":
            headerlist[vary_at] = ("Vary", f"{vary}, Cookie")
    if cache_at < 0:
        headerlist.append(("Cache-Control", "private"))
        return
    directives = [d.strip() for d in headerlist[cache_at][1].split(",") if d.strip()]
    names = {d.split("=", 1)[0].lower() for d in directives}
    if "private" in names or "no-store" in names:
        return
    kept = [d for d in directives if d.split("=", 1)[0].lower() not in ("public", "s-maxage")]
    headerlist[cache_at] = ("Cache-Control", ", ".join(["private", *kept]))

"""Bearer credentials (``jeff.bearer = true``): the cookie's value, sent by an API client
as ``Authorization: Bearer <value>``, verified exactly like the cookie (parsed by
:func:`pyramid_jeff.credentials.bearer_credential`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .policy import jeff_policy
from .request import find_state

if TYPE_CHECKING:
    from pyramid.request import Request


def bearer_token(request: Request) -> str | None:
    """The credential ``remember()`` issued in this request, for an API client to send
    as ``Authorization: Bearer <value>`` (``jeff.bearer = true``); ``None`` if this
    request logged nobody in. The session is kept even when the response sets no
    cookie. Treat the value as a password: it is one."""
    return jeff_policy(request.registry).bearer_token(request)


def csrf_applies(request: Request) -> bool:
    """For ``config.set_default_csrf_options(require_csrf=True, callback=csrf_applies)``:
    a request authenticated by a bearer credential carries no ambient authority, so
    it needs no CSRF token; every other request does."""
    state = find_state(request)
    if state is None:
        state = jeff_policy(request.registry).state(request)
    return not (state.bearer and state.credential is not None)

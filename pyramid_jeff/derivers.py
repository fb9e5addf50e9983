"""View options: ``jeff_recent_login=SECONDS`` and ``jeff_passive=True``.

::

    @view_config(route_name="password", permission="edit", jeff_recent_login=300)
    def change_password(request): ...

    @view_config(route_name="poll", renderer="json", jeff_passive=True)
    def poll(request): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden

from .errors import ReauthenticationRequired
from .request import HAS_PASSIVE_VIEWS, PASSIVE, REAUTHENTICATE

if TYPE_CHECKING:
    from pyramid.interfaces import IViewDeriverInfo
    from pyramid.request import Request

View = Callable[[Any, "Request"], Any]


def recent_login(view: View, info: IViewDeriverInfo) -> View:
    """``jeff_recent_login=SECONDS``: the session must have logged in at most that long
    ago ("sudo mode" before changing a password), else the request is handled as an
    anonymous request to a forbidden view: :class:`~pyramid_jeff.ReauthenticationRequired`
    is raised, whose default view sends it to ``jeff.login_url`` with ``next`` and
    ``jeff_reason=reauthenticate`` (401 for XHR/JSON). A new login satisfies it."""
    seconds = info.options.get("jeff_recent_login")
    if seconds is None:
        return view
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise ConfigurationError(
            f"jeff_recent_login: expected a whole number of seconds of at least 1 "
            f"(got {seconds!r})"
        )
    window_ms = seconds * 1000

    def recent_login_view(context: Any, request: Request) -> Any:
        session = request.jeff_session
        if session is None:
            raise HTTPForbidden()
        if request.jeff.clock() - session.created_ms > window_ms:
            request.__dict__[REAUTHENTICATE] = True
            raise ReauthenticationRequired()
        return view(context, request)

    return recent_login_view


recent_login.options = ("jeff_recent_login",)  # type: ignore[attr-defined]


def passive(view: View, info: IViewDeriverInfo) -> View:
    """``jeff_passive=True``: this view's requests never refresh ``last_seen``, so a
    polling endpoint does not keep an idle session alive (it still verifies it)."""
    if not info.options.get("jeff_passive"):
        return view
    # The tween then refreshes last_seen only once the view is known (see the tween).
    info.registry[HAS_PASSIVE_VIEWS] = True

    def passive_view(context: Any, request: Request) -> Any:
        request.__dict__[PASSIVE] = True
        return view(context, request)

    return passive_view


passive.options = ("jeff_passive",)  # type: ignore[attr-defined]

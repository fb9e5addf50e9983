"""An application that uses the account-security features the way a Pyramid app would:
``@view_config`` options, subscribers, a login view that reads ``jeff_login_reason``, the
README's password- and e-mail-change recipes, and an API login handing out a bearer
credential."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pyramid.authorization import Allow, Authenticated
from pyramid.config import Configurator
from pyramid.events import subscriber
from pyramid.httpexceptions import HTTPFound, HTTPSeeOther
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import view_config

from pyramid_jeff import TooManySessions, bearer_token, csrf_applies, safe_return_path
from pyramid_jeff.events import EveryoneRevoked, SessionCreated, SessionEnded

# Every event the subscribers saw, in order (the tests clear it).
EVENTS: list[Any] = []


class Root:
    __acl__: ClassVar = [(Allow, Authenticated, "view")]

    def __init__(self, request: Request) -> None:
        self.request = request


@subscriber(SessionCreated, SessionEnded, EveryoneRevoked)
def record(event: Any) -> None:
    EVENTS.append(event)


@view_config(route_name="login", renderer="json", request_method="GET")
def login_page(request: Request) -> dict[str, Any]:
    return {"reason": request.jeff_login_reason, "next": request.GET.get("next")}


@view_config(route_name="login", request_method="POST")
def login(request: Request) -> Response:
    if request.POST.get("as_before") and request.authenticated_userid is not None:
        pass  # a view that looks at who is logged in before logging in again
    try:
        headers = remember(request, request.POST["key"])
    except TooManySessions as exc:
        return Response(f"too many sessions for {exc.key} ({exc.max_sessions})", status=409)
    target = safe_return_path(request.GET.get("next"), "/home")
    return HTTPSeeOther(location=target, headers=headers)


@view_config(route_name="api_login", request_method="POST", renderer="json")
def api_login(request: Request) -> dict[str, Any]:
    remember(request, request.json_body["key"])  # no cookie for an API client
    return {"token": bearer_token(request)}


@view_config(route_name="logout", request_method="POST")
def logout(request: Request) -> Response:
    if request.authenticated_userid is None:
        return HTTPSeeOther(location="/login")  # nothing to log out
    return HTTPSeeOther(location="/login", headers=forget(request))


@view_config(route_name="home", renderer="string", permission="view")
def home(request: Request) -> str:
    return f"home of {request.authenticated_userid}"


@view_config(route_name="poll", renderer="json", permission="view", jeff_passive=True)
def poll(request: Request) -> dict[str, int]:
    return {"unread": 0}


@view_config(route_name="password", renderer="string", permission="view", jeff_recent_login=300)
def password_form(request: Request) -> str:
    return "confirm your new password"


@view_config(
    route_name="password",
    request_method="POST",
    permission="view",
    jeff_recent_login=300,
)
def change_password(request: Request) -> Response:
    # The README's recipe: end every session of the user, this one included, then log
    # this browser in afresh (ASVS 7.4.3).
    key = request.authenticated_userid
    request.jeff.revoke_all(key)
    return HTTPSeeOther(location="/home", headers=remember(request, key))


@view_config(
    route_name="email",
    request_method="POST",
    permission="view",
    jeff_recent_login=300,
)
def change_email(request: Request) -> Response:
    # The session key is the e-mail address: sessions of the old key end, and this
    # browser continues under the new one.
    old_key = request.authenticated_userid
    new_key = request.POST["email"]
    request.jeff.revoke_all(old_key)
    return HTTPSeeOther(location="/home", headers=remember(request, new_key))


@view_config(route_name="everyone", request_method="POST", permission="view")
def everyone(request: Request) -> Response:
    request.jeff.revoke_everyone()
    return HTTPSeeOther(location="/login", headers=forget(request))


@view_config(route_name="fail_after_login", request_method="POST")
def fail_after_login(request: Request) -> Response:
    remember(request, request.POST["key"])
    raise RuntimeError("the view fails after remember()")


def custom_redirect(request: Request) -> Response:
    """A ``jeff.redirect`` view: the application's own way to the login page."""
    return HTTPFound(location=f"https://example.com/custom-login?why={request.jeff_login_reason}")


@view_config(route_name="nowhere_allowed", permission="nobody has it")
def nowhere_allowed(request: Request) -> str:
    return "never"


def make_app(
    settings: dict[str, Any],
    *,
    csrf: bool = False,
    tm: bool = False,
    configure: Callable[[Configurator], None] | None = None,
) -> Any:
    config = Configurator(settings=settings, root_factory=Root)
    if tm:
        config.include("pyramid_tm")
    config.include("pyramid_jeff")
    if csrf:
        config.set_default_csrf_options(require_csrf=True, callback=csrf_applies)
    for name, path in [
        ("login", "/login"),
        ("api_login", "/api/login"),
        ("logout", "/logout"),
        ("home", "/home"),
        ("poll", "/poll"),
        ("password", "/password"),
        ("email", "/email"),
        ("everyone", "/everyone"),
        ("fail_after_login", "/fail-after-login"),
        ("nowhere_allowed", "/nowhere-allowed"),
    ]:
        config.add_route(name, path)
    config.scan("tests.account_app")
    if configure is not None:
        configure(config)
    return config.make_wsgi_app()

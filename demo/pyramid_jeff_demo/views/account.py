"""Logging in and out, and changing the password."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pyramid.security import forget, remember
from pyramid.view import view_config

from pyramid_jeff import TooManySessions, safe_return_path
from pyramid_jeff_demo.notices import MAX_EMAIL, read_flash, see_other
from pyramid_jeff_demo.security import (
    DEMO_PASSWORD,
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERS,
    authenticate,
    set_password,
)

if TYPE_CHECKING:
    from pyramid.httpexceptions import HTTPSeeOther
    from pyramid.request import Request

# Seconds since the login after which changing the password asks for it again ("sudo mode").
RECENT_LOGIN = 300

# Why the login page is shown (request.jeff_login_reason). A reason may come from the URL, so
# only these fixed texts are shown for it.
LOGIN_REASONS = {
    "reauthenticate": "Please confirm your password to continue.",
    "expired": "Your session expired. Please sign in again.",
    "idle": "You were signed out after a period of inactivity.",
    "revoked": "You were signed out from another device or by an administrator.",
    "evicted": "You were signed out because you signed in on too many devices.",
    "ended": "Your session has ended; please sign in again.",
}


def login_reason(request: Request) -> str | None:
    """Why this browser is asked to log in, if it should be told.

    A signed-in browser is only ever asked to confirm its password: a "your session ended"
    reason in its URL is stale or forged.
    """
    reason = request.jeff_login_reason
    if request.authenticated_userid is not None and reason != "reauthenticate":
        return None
    return reason if reason in LOGIN_REASONS else None


def _confirming(request: Request, reason: str | None) -> bool:
    # Re-authenticating a browser that is still signed in: its user confirms their own
    # password, so the email is filled in and fixed.
    return reason == "reauthenticate" and request.authenticated_userid is not None


@view_config(
    route_name="login", request_method="GET", renderer="pyramid_jeff_demo:templates/login.jinja2"
)
def login_form(request: Request) -> dict[str, Any]:
    reason = login_reason(request)
    confirming = _confirming(request, reason)
    flash = read_flash(request)
    return {
        "users": list(USERS.values()),
        "password": DEMO_PASSWORD,
        "notice": flash.text if flash and not flash.error else None,
        "error": flash.text if flash and flash.error else None,
        "email": request.authenticated_userid if confirming else (flash.email if flash else ""),
        "reason": reason,
        "reason_text": LOGIN_REASONS.get(reason or ""),
        "confirming": confirming,
        # The form carries ``next`` on to the POST; only a path on this site survives.
        "next": safe_return_path(request.GET.get("next"), ""),
    }


@view_config(route_name="login", request_method="POST")
def login(request: Request) -> HTTPSeeOther:
    reason = login_reason(request)
    # A confirmation is for the signed-in user, whatever the (read-only) email field says.
    confirming = _confirming(request, reason)
    email = request.POST.get("email", "")[:MAX_EMAIL]
    password = request.POST.get("password", "")[:1024]
    next_path = safe_return_path(request.POST.get("next"), "")
    user = authenticate(request.authenticated_userid if confirming else email, password)
    error = "wrong-password"
    if user is not None:
        try:
            # A new session (and so a new CSRF token); the session this browser had, if any, ends.
            headers = remember(request, user.email, meta={"login_method": "password"})
        except TooManySessions:
            # jeff.max_sessions_policy = reject: this login would exceed jeff.max_sessions.
            error = "too-many-devices"
        else:
            return see_other(request, next_path or request.route_path("home"), headers)
    # Post/Redirect/Get: the history holds the login page, never this POST, so Back and
    # reload do not offer to send the password again. The email typed (never the password),
    # ``next`` and the reason survive the round trip.
    query = {
        name: value for name, value in (("next", next_path), ("jeff_reason", reason)) if value
    }
    location = request.route_path("login", _query=query)
    return see_other(request, location, notice=error, email="" if confirming else email)


@view_config(route_name="logout", request_method="POST", permission="view")
def logout(request: Request) -> HTTPSeeOther:
    # ``permission="view"``: a browser whose session was already ended elsewhere is sent to
    # the login page instead of being shown a CSRF error for a token that died with it.
    headers = forget(request)
    return see_other(request, request.route_path("login"), headers, notice="signed-out")


def _password_page(request: Request, **values: Any) -> dict[str, Any]:
    created = request.jeff_session.created_at
    left = timedelta(seconds=RECENT_LOGIN) - (datetime.now(timezone.utc) - created)
    return {
        "min_length": MIN_PASSWORD,
        "max_length": MAX_PASSWORD,
        "minutes_left": max(int(left.total_seconds()) // 60, 0),
        "error": None,
        **values,
    }


# jeff_recent_login: a session older than RECENT_LOGIN is sent to the login page to confirm
# the password first, so a browser left signed in cannot be used to take over the account.
@view_config(
    route_name="password",
    request_method="GET",
    permission="view",
    jeff_recent_login=RECENT_LOGIN,
    renderer="pyramid_jeff_demo:templates/password.jinja2",
)
def password_form(request: Request) -> dict[str, Any]:
    return _password_page(request)


@view_config(
    route_name="password",
    request_method="POST",
    permission="view",
    jeff_recent_login=RECENT_LOGIN,
    renderer="pyramid_jeff_demo:templates/password.jinja2",
)
def change_password(request: Request) -> Any:
    email = request.authenticated_userid
    current = request.POST.get("current_password", "")[:1024]
    new = request.POST.get("new_password", "")[:1024]
    error = None
    if authenticate(email, current) is None:
        error = "Your current password is not right."
    elif not MIN_PASSWORD <= len(new) <= MAX_PASSWORD:
        error = f"The new password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters."
    elif new == current:
        error = "The new password must differ from the current one."
    if error is not None:
        return _password_page(request, error=error)
    set_password(email, new)
    # A new password ends every session of the account, this one too (ASVS 7.4.3): whoever
    # knew the old password is out everywhere. This browser then gets a fresh session.
    others = request.jeff.revoke_all(email) - 1
    headers = remember(request, email, meta={"login_method": "password"})
    notice = "password-changed-others" if others > 0 else "password-changed"
    return see_other(
        request, request.route_path("sessions"), headers, notice=notice, n=str(others)
    )

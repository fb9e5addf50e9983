"""The demo's views. Each one is a few lines: pyramid_jeff does the work."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from pyramid.events import NewResponse, subscriber
from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import forget, remember
from pyramid.view import view_config

from pyramid_jeff import TooManySessions, safe_return_path
from pyramid_jeff_demo.audit import audit_trail
from pyramid_jeff_demo.security import (
    DEMO_PASSWORD,
    MAX_PASSWORD,
    MIN_PASSWORD,
    USERS,
    authenticate,
    set_password,
)

if TYPE_CHECKING:
    from pyramid.request import Request

    from pyramid_jeff import Session

# Messages shown once, on the page after a redirect ("flash" messages). They travel in a
# short-lived HttpOnly cookie that only this site sets (__Host- over https), never in the
# URL, so a crafted link cannot show one; only these fixed texts are displayed, and ``n``
# and ``user`` are checked before use.
_NOTICES = {
    "signed-out": "You are signed out.",
    "ended-one": "That device is signed out.",
    "gone": "That session had already ended.",
    "ended-others": "Signed out {n} other device(s).",
    "ended-all": "Ended {n} session(s) of {user}.",
    "ended-session": "Ended that session of {user}.",
    "everyone": "Everyone is signed out, you too: sign in again.",
    "password-changed": "Your password is changed.",
    "password-changed-others": "Your password is changed. Signed out {n} other device(s).",
}

# Seconds since the login after which changing the password asks for it again ("sudo mode").
RECENT_LOGIN = 300

# Why the login page is shown (request.jeff_login_reason). A reason may come from the URL, so
# only these fixed texts are shown for it.
_LOGIN_REASONS = {
    "reauthenticate": "Please confirm your password to continue.",
    "expired": "Your session expired. Please sign in again.",
    "idle": "You were signed out after a period of inactivity.",
    "revoked": "You were signed out from another device or by an administrator.",
    "evicted": "You were signed out because you signed in on too many devices.",
    "ended": "Your session has ended; please sign in again.",
}


_NOTICE_MAX_AGE = 60


def _notice_cookie(request: Request) -> str:
    return "__Host-demo_notice" if request.scheme == "https" else "demo_notice"


def _notice(request: Request) -> str | None:
    """The notice flashed by the previous response, if any; it is shown once."""
    name = _notice_cookie(request)
    try:
        raw = request.cookies.get(name)
    except (ValueError, UnicodeError):  # a malformed Cookie header: no notice
        raw = None
    if raw is None:
        return None
    request.add_response_callback(
        lambda request, response: _set_notice(request, response, "", max_age=0)
    )
    values = {k: v[0] for k, v in parse_qs(raw).items()}
    template = _NOTICES.get(values.get("kind", ""))
    if template is None:
        return None
    n = values.get("n", "0")
    user = values.get("user", "")
    return template.format(
        n=int(n) if n.isascii() and n.isdigit() and len(n) < 6 else 0,
        user=user if user in USERS else "that user",
    )


def _see_other(
    request: Request,
    location: str,
    headers: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    **values: str,
) -> HTTPSeeOther:
    # 303: after a POST the browser GETs the next page, so a reload never resubmits a form.
    response = HTTPSeeOther(location=location, headers=headers)
    if notice is not None:
        value = urlencode({"kind": notice, **values})
        _set_notice(request, response, value, max_age=_NOTICE_MAX_AGE)
    return response


def _set_notice(request: Request, response: Any, value: str, max_age: int) -> None:
    response.set_cookie(
        _notice_cookie(request),
        value,
        max_age=max_age,
        path="/",
        secure=request.scheme == "https",
        httponly=True,
        samesite="Lax",
    )


@subscriber(NewResponse)
def security_headers(event: NewResponse) -> None:
    """Headers any login page deserves; the demo has no inline script or style to allow."""
    headers = event.response.headers
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")


@view_config(route_name="home", renderer="pyramid_jeff_demo:templates/home.jinja2")
def home(request: Request) -> dict[str, Any]:
    return {}


# --- logging in and out -------------------------------------------------------------------


def _login_reason(request: Request) -> str | None:
    """Why this browser is asked to log in, if it should be told.

    A signed-in browser is only ever asked to confirm its password: a "your session ended"
    reason in its URL is stale or forged.
    """
    reason = request.jeff_login_reason
    if request.authenticated_userid is not None and reason != "reauthenticate":
        return None
    return reason if reason in _LOGIN_REASONS else None


def _login_page(request: Request, **values: Any) -> dict[str, Any]:
    reason = _login_reason(request)
    # Re-authenticating a browser that is still signed in: its user confirms their own
    # password, so the email is filled in and fixed.
    confirming = reason == "reauthenticate" and request.authenticated_userid is not None
    return {
        "users": list(USERS.values()),
        "password": DEMO_PASSWORD,
        "notice": _notice(request),
        "email": request.authenticated_userid if confirming else "",
        "error": None,
        "reason": reason,
        "reason_text": _LOGIN_REASONS.get(reason or ""),
        "confirming": confirming,
        **values,
    }


@view_config(
    route_name="login", request_method="GET", renderer="pyramid_jeff_demo:templates/login.jinja2"
)
def login_form(request: Request) -> dict[str, Any]:
    # The form carries ``next`` on to the POST; only a path on this site survives.
    return _login_page(request, next=safe_return_path(request.GET.get("next"), ""))


@view_config(
    route_name="login", request_method="POST", renderer="pyramid_jeff_demo:templates/login.jinja2"
)
def login(request: Request) -> Any:
    page = _login_page(request)
    # A confirmation is for the signed-in user, whatever the (read-only) email field says.
    email = page["email"] if page["confirming"] else request.POST.get("email", "")[:254]
    password = request.POST.get("password", "")[:1024]
    next_path = safe_return_path(request.POST.get("next"), "")
    page.update(next=next_path, email=email)
    user = authenticate(email, password)
    if user is None:
        return {**page, "error": "Wrong email or password."}
    try:
        # A new session (and so a new CSRF token); the session this browser had, if any, ends.
        headers = remember(request, user.email, meta={"login_method": "password"})
    except TooManySessions:
        # jeff.max_sessions_policy = reject: this login would exceed jeff.max_sessions.
        return {
            **page,
            "error": "You are signed in on too many devices; sign out of one first.",
        }
    return _see_other(request, next_path or request.route_path("home"), headers)


@view_config(route_name="logout", request_method="POST", permission="view")
def logout(request: Request) -> HTTPSeeOther:
    # ``permission="view"``: a browser whose session was already ended elsewhere is sent to
    # the login page instead of being shown a CSRF error for a token that died with it.
    headers = forget(request)
    return _see_other(request, request.route_path("login"), headers, notice="signed-out")


# --- pages -----------------------------------------------------------------------------------

_PRODUCTS = [
    ("Pineapple", "Sweet, spiky, and the mascot of jeff.", "2.50"),
    ("Session cookies", "HttpOnly, SameSite=Lax, baked fresh at every login.", "0.00"),
    ("Redis hash", "One per user, one field per device. Cluster-ready.", "7.00"),
    ("Revocation button", "Ends a session now, not when a token expires.", "1.00"),
]


@view_config(route_name="products", renderer="pyramid_jeff_demo:templates/products.jinja2")
def products(request: Request) -> dict[str, Any]:
    # Public: anyone sees it; a logged-in visitor is greeted by name (request.identity).
    return {"products": _PRODUCTS}


@view_config(
    route_name="users", permission="view", renderer="pyramid_jeff_demo:templates/users.jinja2"
)
def users(request: Request) -> dict[str, Any]:
    return {"users": list(USERS.values())}


# --- your devices ----------------------------------------------------------------------------


def describe_user_agent(user_agent: str | None) -> str:
    """A name such as "Firefox on Android": enough to recognise a device, no library needed."""
    ua = user_agent or ""
    browsers = [
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"), ("Chrome/", "Chrome"), ("Chromium/", "Chromium"),
        ("Safari/", "Safari"), ("curl/", "curl"), ("python", "a Python script"),
    ]  # fmt: skip
    systems = [
        ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
        ("CrOS", "ChromeOS"), ("Mac OS X", "macOS"), ("Linux", "Linux"),
    ]  # fmt: skip
    browser = next((name for token, name in browsers if token in ua), "Unknown browser")
    system = next((name for token, name in systems if token in ua), None)
    return f"{browser} on {system}" if system else browser


def _ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _device(session: Session, current_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": session.id,
        "this": session.id == current_id,
        "browser": describe_user_agent(session.user_agent),
        "user_agent": session.user_agent or "",
        "ip": session.ip or "unknown",
        "created": _when(session.created_at),
        "created_ago": _ago(now - session.created_at),
        "last_seen": _when(session.last_seen),
        "last_seen_ago": _ago(now - session.last_seen),
        "expires": _when(session.expires_at),
        "login_method": (session.meta or {}).get("login_method", ""),
    }


@view_config(
    route_name="sessions",
    permission="view",
    renderer="pyramid_jeff_demo:templates/sessions.jinja2",
)
def sessions(request: Request) -> dict[str, Any]:
    current = request.jeff_session
    now = datetime.now(timezone.utc)
    devices = [
        _device(s, current.id, now) for s in request.jeff.sessions(request.authenticated_userid)
    ]
    devices.sort(key=lambda d: not d["this"])  # this device first, then newest first (stable)
    return {"devices": devices, "notice": _notice(request)}


@view_config(route_name="revoke", request_method="POST", permission="view")
def revoke(request: Request) -> HTTPSeeOther:
    session_id = request.POST.get("session_id", "")
    if session_id == request.jeff_session.id:
        # Ending this very device is logging out: the cookie goes too.
        return logout(request)
    # Scoped to the caller's own key: a session id of someone else's session ends nothing.
    ended = request.jeff.revoke(request.authenticated_userid, session_id)
    notice = "ended-one" if ended else "gone"
    return _see_other(request, request.route_path("sessions"), notice=notice)


@view_config(route_name="revoke_others", request_method="POST", permission="view")
def revoke_others(request: Request) -> HTTPSeeOther:
    n = request.jeff.revoke_all(request.authenticated_userid, keep=request.jeff_session.id)
    return _see_other(request, request.route_path("sessions"), notice="ended-others", n=str(n))


# --- changing the password --------------------------------------------------------------


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
    return _see_other(
        request, request.route_path("sessions"), headers, notice=notice, n=str(others)
    )


# --- admin -----------------------------------------------------------------------------------

_AUDIT_LABELS = {
    "created": "Signed in",
    "ended": "Session ended",
    "everyone": "Everyone signed out",
}


def _known_user(email: str | None) -> str | None:
    return email if email in USERS else None


def _admin_back(request: Request, email: str | None) -> str:
    """The admin page, showing ``email``'s sessions if that is a user."""
    path: str = request.route_path("admin", _query={"email": email} if email else {})
    return path


@view_config(
    route_name="admin", permission="admin", renderer="pyramid_jeff_demo:templates/admin.jinja2"
)
def admin(request: Request) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    chosen = _known_user(request.GET.get("email"))
    rows = []
    for user in USERS.values():
        live = request.jeff.sessions(user.email)
        last_seen = max((s.last_seen for s in live), default=None)
        rows.append(
            {
                "user": user,
                "count": len(live),
                "last_seen": _ago(now - last_seen) if last_seen else "",
                "chosen": user.email == chosen,
            }
        )
    devices = []
    if chosen is not None:
        current_id = request.jeff_session.id
        devices = [_device(s, current_id, now) for s in request.jeff.sessions(chosen)]
    trail = [
        {
            "when": entry.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "ago": _ago(now - entry.at),
            "label": _AUDIT_LABELS[entry.event],
            "event": entry.event,
            "key": entry.key,
            "session_id": entry.session_id,
            "reason": entry.reason,
        }
        for entry in audit_trail(request.registry).entries()
    ]
    return {
        "rows": rows,
        "chosen": USERS.get(chosen) if chosen else None,
        "devices": devices,
        "trail": trail,
        "notice": _notice(request),
    }


@view_config(route_name="admin_revoke", request_method="POST", permission="admin")
def admin_revoke(request: Request) -> HTTPSeeOther:
    email = _known_user(request.POST.get("email"))
    n = request.jeff.revoke_all(email) if email else 0
    return _see_other(
        request, _admin_back(request, email), notice="ended-all", n=str(n), user=email or ""
    )


@view_config(route_name="admin_revoke_session", request_method="POST", permission="admin")
def admin_revoke_session(request: Request) -> HTTPSeeOther:
    email = _known_user(request.POST.get("email"))
    session_id = request.POST.get("session_id", "")
    if email == request.authenticated_userid and session_id == request.jeff_session.id:
        return logout(request)  # the admin's own session, in this browser: logging out
    # Scoped to the chosen user: a session id of another user's session ends nothing.
    ended = request.jeff.revoke(email, session_id) if email else False
    notice = "ended-session" if ended else "gone"
    return _see_other(request, _admin_back(request, email), notice=notice, user=email or "")


@view_config(
    route_name="admin_everyone",
    request_method="GET",
    permission="admin",
    renderer="pyramid_jeff_demo:templates/everyone.jinja2",
)
def admin_everyone_form(request: Request) -> dict[str, Any]:
    # The confirmation step: the admin page only links here, it never signs anyone out.
    live = {user.email: len(request.jeff.sessions(user.email)) for user in USERS.values()}
    return {"sessions": sum(live.values()), "users": sum(1 for n in live.values() if n)}


@view_config(route_name="admin_everyone", request_method="POST", permission="admin")
def admin_everyone(request: Request) -> HTTPSeeOther:
    # Every session of every user ends at once, without listing them (ASVS 7.4.5: e.g. after
    # a leak). The admin's own session too: signing this browser in again without a
    # password would hand whoever stands at it a fresh login.
    request.jeff.revoke_everyone()
    return _see_other(request, request.route_path("login"), forget(request), notice="everyone")


# --- errors ----------------------------------------------------------------------------------


@view_config(context=BadCSRFToken, renderer="pyramid_jeff_demo:templates/csrf.jinja2")
@view_config(context=BadCSRFOrigin, renderer="pyramid_jeff_demo:templates/csrf.jinja2")
def bad_csrf(exc: Exception, request: Request) -> dict[str, Any]:
    # Still a 400, as Pyramid's default; a person just gets a page that says what to do.
    request.response.status_int = 400
    return {}

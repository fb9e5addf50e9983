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

from pyramid_jeff import safe_return_path
from pyramid_jeff_demo.security import DEMO_PASSWORD, USERS, authenticate

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


def _login_page(request: Request, **values: Any) -> dict[str, Any]:
    return {
        "users": list(USERS.values()),
        "password": DEMO_PASSWORD,
        "notice": _notice(request),
        "email": "",
        "error": None,
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
    email = request.POST.get("email", "")[:254]
    password = request.POST.get("password", "")[:1024]
    next_path = safe_return_path(request.POST.get("next"), "")
    user = authenticate(email, password)
    if user is None:
        return _login_page(request, next=next_path, email=email, error="Wrong email or password.")
    # A new session (and so a new CSRF token); the session this browser had, if any, is ended.
    headers = remember(request, user.email, meta={"login_method": "password"})
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


# --- admin -----------------------------------------------------------------------------------


@view_config(
    route_name="admin", permission="admin", renderer="pyramid_jeff_demo:templates/admin.jinja2"
)
def admin(request: Request) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    rows = []
    for user in USERS.values():
        live = request.jeff.sessions(user.email)
        last_seen = max((s.last_seen for s in live), default=None)
        rows.append(
            {
                "user": user,
                "count": len(live),
                "last_seen": _ago(now - last_seen) if last_seen else "",
            }
        )
    return {"rows": rows, "notice": _notice(request)}


@view_config(route_name="admin_revoke", request_method="POST", permission="admin")
def admin_revoke(request: Request) -> HTTPSeeOther:
    email = request.POST.get("email", "")
    n = request.jeff.revoke_all(email) if email in USERS else 0
    user = email if email in USERS else ""
    return _see_other(
        request, request.route_path("admin"), notice="ended-all", n=str(n), user=user
    )


# --- errors ----------------------------------------------------------------------------------


@view_config(context=BadCSRFToken, renderer="pyramid_jeff_demo:templates/csrf.jinja2")
@view_config(context=BadCSRFOrigin, renderer="pyramid_jeff_demo:templates/csrf.jinja2")
def bad_csrf(exc: Exception, request: Request) -> dict[str, Any]:
    # Still a 400, as Pyramid's default; a person just gets a page that says what to do.
    request.response.status_int = 400
    return {}

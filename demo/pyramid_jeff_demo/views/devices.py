"""Your devices: every session of the signed-in user, and ending any of them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from pyramid.view import view_config

from pyramid_jeff_demo.notices import notice, see_other
from pyramid_jeff_demo.views.account import logout

if TYPE_CHECKING:
    from pyramid.httpexceptions import HTTPSeeOther
    from pyramid.request import Request

    from pyramid_jeff import Session


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


def ago(delta: timedelta) -> str:
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


def device(session: Session, current_id: str, now: datetime) -> dict[str, Any]:
    """A row of a devices table (here and on the admin page)."""
    return {
        "id": session.id,
        "this": session.id == current_id,
        "browser": describe_user_agent(session.user_agent),
        "user_agent": session.user_agent or "",
        "ip": session.ip or "unknown",
        "created": _when(session.created_at),
        "created_ago": ago(now - session.created_at),
        "last_seen": _when(session.last_seen),
        "last_seen_ago": ago(now - session.last_seen),
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
        device(s, current.id, now) for s in request.jeff.sessions(request.authenticated_userid)
    ]
    devices.sort(key=lambda d: not d["this"])  # this device first, then newest first (stable)
    return {"devices": devices, "notice": notice(request)}


@view_config(route_name="revoke", request_method="POST", permission="view")
def revoke(request: Request) -> HTTPSeeOther:
    session_id = request.POST.get("session_id", "")
    if session_id == request.jeff_session.id:
        # Ending this very device is logging out: the cookie goes too.
        return logout(request)
    # Scoped to the caller's own key: a session id of someone else's session ends nothing.
    ended = request.jeff.revoke(request.authenticated_userid, session_id)
    return see_other(
        request, request.route_path("sessions"), notice="ended-one" if ended else "gone"
    )


@view_config(route_name="revoke_others", request_method="POST", permission="view")
def revoke_others(request: Request) -> HTTPSeeOther:
    n = request.jeff.revoke_all(request.authenticated_userid, keep=request.jeff_session.id)
    return see_other(request, request.route_path("sessions"), notice="ended-others", n=str(n))

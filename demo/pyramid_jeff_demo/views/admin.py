"""The admin page: any user's sessions, ending them, signing out everyone, the audit trail."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pyramid.security import forget
from pyramid.view import view_config

from pyramid_jeff_demo.audit import audit_trail
from pyramid_jeff_demo.notices import notice, see_other
from pyramid_jeff_demo.security import USERS
from pyramid_jeff_demo.views.account import logout
from pyramid_jeff_demo.views.devices import ago, device

if TYPE_CHECKING:
    from pyramid.httpexceptions import HTTPSeeOther
    from pyramid.request import Request

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


def _user_rows(request: Request, chosen: str | None, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for user in USERS.values():
        live = request.jeff.sessions(user.email)
        last_seen = max((s.last_seen for s in live), default=None)
        rows.append(
            {
                "user": user,
                "count": len(live),
                "last_seen": ago(now - last_seen) if last_seen else "",
                "chosen": user.email == chosen,
            }
        )
    return rows


def _trail(request: Request, now: datetime) -> list[dict[str, str]]:
    return [
        {
            "when": entry.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "ago": ago(now - entry.at),
            "label": _AUDIT_LABELS[entry.event],
            "event": entry.event,
            "key": entry.key,
            "session_id": entry.session_id,
            "reason": entry.reason,
        }
        for entry in audit_trail(request.registry).entries()
    ]


@view_config(
    route_name="admin", permission="admin", renderer="pyramid_jeff_demo:templates/admin.jinja2"
)
def admin(request: Request) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    chosen = _known_user(request.GET.get("email"))
    devices = []
    if chosen is not None:
        current_id = request.jeff_session.id
        devices = [device(s, current_id, now) for s in request.jeff.sessions(chosen)]
    return {
        "rows": _user_rows(request, chosen, now),
        "chosen": USERS.get(chosen) if chosen else None,
        "devices": devices,
        "trail": _trail(request, now),
        "notice": notice(request),
    }


@view_config(route_name="admin_revoke", request_method="POST", permission="admin")
def admin_revoke(request: Request) -> HTTPSeeOther:
    email = _known_user(request.POST.get("email"))
    n = request.jeff.revoke_all(email) if email else 0
    return see_other(
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
    return see_other(request, _admin_back(request, email), notice=notice, user=email or "")


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
    return see_other(request, request.route_path("login"), forget(request), notice="everyone")

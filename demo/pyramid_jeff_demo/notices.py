"""Messages shown once, on the page after a redirect ("flash" messages).

They travel in a short-lived HttpOnly cookie that only this site sets (``__Host-`` over
https), never in the URL, so a crafted link cannot show one. Only the fixed texts below are
displayed; ``n`` and ``user`` are checked before use, and ``email`` (what a failed login
typed) only ever refills the login form, escaped like any other value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from pyramid.httpexceptions import HTTPSeeOther

from pyramid_jeff_demo.security import USERS

if TYPE_CHECKING:
    from pyramid.request import Request

NOTICES = {
    "signed-out": "You are signed out.",
    "ended-one": "That device is signed out.",
    "gone": "That session had already ended.",
    "ended-others": "Signed out {n} other device(s).",
    "ended-all": "Ended {n} session(s) of {user}.",
    "ended-session": "Ended that session of {user}.",
    "everyone": "Everyone is signed out, you too: sign in again.",
    "password-changed": "Your password is changed.",
    "password-changed-others": "Your password is changed. Signed out {n} other device(s).",
    "stale-form": "Your session had ended, so that form changed nothing. Please sign in again.",
}
# Shown as errors (role="alert") on the page the browser is sent back to.
ERRORS = {
    "wrong-password": "Wrong email or password.",
    "too-many-devices": "You are signed in on too many devices; sign out of one first.",
}

MAX_AGE = 60
MAX_EMAIL = 254


@dataclass(frozen=True)
class Flash:
    text: str
    error: bool
    email: str = ""


def _cookie_name(request: Request) -> str:
    return "__Host-demo_notice" if request.scheme == "https" else "demo_notice"


def read_flash(request: Request) -> Flash | None:
    """The message flashed by the previous response, if any; it is shown once."""
    try:
        raw = request.cookies.get(_cookie_name(request))
    except (ValueError, UnicodeError):  # a malformed Cookie header: no message
        raw = None
    if raw is None:
        return None
    request.add_response_callback(
        lambda request, response: _set_cookie(request, response, "", max_age=0)
    )
    values = {k: v[0] for k, v in parse_qs(raw).items()}
    kind = values.get("kind", "")
    template = NOTICES.get(kind) or ERRORS.get(kind)
    if template is None:
        return None
    n = values.get("n", "0")
    user = values.get("user", "")
    text = template.format(
        n=int(n) if n.isascii() and n.isdigit() and len(n) < 6 else 0,
        user=user if user in USERS else "that user",
    )
    email = values.get("email", "")[:MAX_EMAIL]
    return Flash(text, kind in ERRORS, email if email.isprintable() else "")


def notice(request: Request) -> str | None:
    """The text of a flashed notice, for a page that shows no errors."""
    flash = read_flash(request)
    return flash.text if flash is not None and not flash.error else None


def see_other(
    request: Request,
    location: str,
    headers: list[tuple[str, str]] | None = None,
    notice: str | None = None,
    **values: str,
) -> HTTPSeeOther:
    # 303: after a POST the browser GETs the next page, so a reload never resubmits a form.
    response = HTTPSeeOther(location=location, headers=headers)
    if notice is not None:
        _set_cookie(request, response, urlencode({"kind": notice, **values}), max_age=MAX_AGE)
    return response


def _set_cookie(request: Request, response: Any, value: str, max_age: int) -> None:
    response.set_cookie(
        _cookie_name(request),
        value,
        max_age=max_age,
        path="/",
        secure=request.scheme == "https",
        httponly=True,
        samesite="Lax",
    )

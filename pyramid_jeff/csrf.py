"""CSRF tokens for apps without ``request.session``: kept with the login session.

Pyramid's default CSRF storage needs a ``request.session``, which a pyramid_jeff app
does not have. :class:`JeffCSRFStoragePolicy` (enable with ``jeff.csrf = true``):

- logged in: the token is derived from the login session's secret (HMAC-SHA256 of a
  fixed label keyed by the cookie's token), so it needs no storage, no write, and is
  new at every login, like Django's ``rotate_token``;
- anonymous (a login form): a random token in a cookie of its own (``jeff_csrf``,
  HttpOnly, same attributes as the session cookie), replaced after logout.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from hashlib import sha256
from typing import TYPE_CHECKING

from pyramid.interfaces import ICSRFStoragePolicy
from zope.interface import implementer

from .cookies import CookieSpec, find_cookie

if TYPE_CHECKING:
    from pyramid.request import Request
    from pyramid.response import Response

    from .policy import JeffSecurityPolicy

_LABEL = b"pyramid_jeff csrf v1"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_NEW_TOKEN_KEY = "pyramid_jeff.csrf_token"


@implementer(ICSRFStoragePolicy)
class JeffCSRFStoragePolicy:
    def __init__(self, security: JeffSecurityPolicy, cookie: CookieSpec) -> None:
        self.security = security
        self.cookie = cookie

    def new_csrf_token(self, request: Request) -> str:
        """A fresh anonymous token, set in the CSRF cookie with this response.

        When the request is logged in, its token only changes with a new login, so
        this returns the current one.
        """
        session_token = self._session_token(request)
        if session_token is not None:
            return session_token
        token = secrets.token_urlsafe(32)
        request.__dict__[_NEW_TOKEN_KEY] = token

        def set_cookie(request: Request, response: Response) -> None:
            response.headerlist.append(self.cookie.set_header(token, None))

        request.add_response_callback(set_cookie)
        return token

    def get_csrf_token(self, request: Request) -> str:
        return self._current(request) or self.new_csrf_token(request)

    def check_csrf_token(self, request: Request, supplied_token: str) -> bool:
        expected = self._current(request)
        if expected is None or not isinstance(supplied_token, str):
            return False
        return hmac.compare_digest(expected.encode("ascii"), supplied_token.encode("utf-8"))

    def _current(self, request: Request) -> str | None:
        session_token = self._session_token(request)
        if session_token is not None:
            return session_token
        new_token: str | None = request.__dict__.get(_NEW_TOKEN_KEY)
        if new_token is not None:
            return new_token
        value = find_cookie(request.environ.get("HTTP_COOKIE"), self.cookie.name)
        if value is not None and _TOKEN_RE.fullmatch(value):
            return value
        return None

    def _session_token(self, request: Request) -> str | None:
        state = self.security.state(request)
        if self.security.session(request) is None or state.credential is None:
            return None
        mac = hmac.new(state.credential.token.encode("ascii"), _LABEL, sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

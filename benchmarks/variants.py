"""The variants: one tiny Pyramid app per session library, and the floors.

Every app has the same root (an ACL granting ``view`` to ``Authenticated``) and two routes,
so the only difference between variants is the security policy (and session factory):

* ``GET /private``: a view with the ``view`` permission (the bare apps: no permission);
* ``POST /login?u=<userid>``: ``remember(request, userid)``, its headers returned.

``build(name, redis_url)`` returns the WSGI app of a variant of ``VARIANTS``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack
from pyramid.authentication import AuthTktCookieHelper, SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember
from pyramid.session import SignedCookieSessionFactory

from .floor_clients import REDIS_TIMEOUT as REDIS_TIMEOUT  # for the investigations
from .floor_clients import MemoryKV, PooledKV, RawRESP, redis_client
from .measure import CLIENT_IP

SECRET = "benchmark-secret-not-for-production-0123456789abcdef"
MAX_AGE = 30 * 24 * 3600  # the same absolute lifetime everywhere: jeff's default, 30 days
JEFF_VARIANTS = ("jeff-memory", "jeff-redis")


class Root:
    __acl__: ClassVar[list[tuple[str, str, str]]] = [(Allow, Authenticated, "view")]

    def __init__(self, request: Request) -> None:
        self.request = request


def private_view(request: Request) -> Response:
    return Response(b"hello, member\n", content_type="text/plain")


def login_view(request: Request) -> Response:
    headers = remember(request, request.GET["u"])
    return Response(b"welcome\n", content_type="text/plain", headerlist=list(headers))


class CachedPolicy:
    """ACL permits over ``identify(request)``, cached on the request as a real policy does."""

    acl = ACLHelper()

    def identify(self, request: Request) -> str | None:
        raise NotImplementedError

    def identity(self, request: Request) -> str | None:
        if "_bench_userid" not in request.__dict__:
            request.__dict__["_bench_userid"] = self.identify(request)
        return request.__dict__["_bench_userid"]  # type: ignore[no-any-return]

    def authenticated_userid(self, request: Request) -> str | None:
        return self.identity(request)

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        userid = self.identity(request)
        principals = [Everyone] if userid is None else [Everyone, Authenticated, userid]
        return self.acl.permits(context, principals, permission)

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return self.helper.remember(request, userid, **kw)  # type: ignore[attr-defined, no-any-return]

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []


class AuthTktPolicy(CachedPolicy):
    """Pyramid's signed ticket cookie (stateless, sha512 HMAC)."""

    helper = AuthTktCookieHelper(SECRET, hashalg="sha512", max_age=MAX_AGE)

    def identify(self, request: Request) -> str | None:
        ident = self.helper.identify(request)
        return None if ident is None else ident["userid"]


class SessionPolicy(CachedPolicy):
    """Pyramid's ``SessionAuthenticationHelper`` over the configured session factory."""

    helper = SessionAuthenticationHelper()

    def identify(self, request: Request) -> str | None:
        return self.helper.authenticated_userid(request)  # type: ignore[no-any-return]


class NullPolicy(CachedPolicy):
    """Everyone is "alice": what Pyramid's security machinery costs by itself."""

    def identify(self, request: Request) -> str | None:
        return "alice"

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return [("Set-Cookie", "null=1; Path=/; HttpOnly")]


# --------------------------------------------------------------------------------------------
# The floor: the least a server-side, revocable login can do. The cookie holds a random
# session id and a 256-bit token; the store keeps one msgpack record per session with the
# token's SHA-256, the key and the times. Verify = one read + unpack + one SHA-256 +
# constant-time compare; login = one write with a TTL. No listing, no revoke-by-key, no
# limits: the cost to beat, not a design to copy.


class FloorPolicy(CachedPolicy):
    def __init__(self, client: Any) -> None:
        self.client = client  # .get(key) and .set(key, value, px=ms)

    def identify(self, request: Request) -> str | None:
        value = request.cookies.get("floor")
        if not value or len(value) > 100:
            return None
        sid, _, token = value.partition(".")
        raw = self.client.get(b"floor:" + sid.encode())
        if raw is None:
            return None
        record = msgpack.unpackb(raw)
        digest = hashlib.sha256(token.encode()).digest()
        if not hmac.compare_digest(record["h"], digest) or record["e"] < time.time() * 1000:
            return None
        return record["k"]  # type: ignore[no-any-return]

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        sid, token = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        record = floor_record(userid, request.user_agent, token, request.remote_addr)
        self.client.set(b"floor:" + sid.encode(), record, px=MAX_AGE * 1000)
        cookie = f"floor={sid}.{token}; Max-Age={MAX_AGE}; Path=/; HttpOnly; SameSite=Lax"
        return [("Set-Cookie", cookie)]


def floor_record(userid: str, user_agent: str, token: str = "", ip: str = CLIENT_IP) -> bytes:
    """The floor's record: the key, the token's SHA-256, the times, IP and User-Agent."""
    now = int(time.time() * 1000)
    digest = hashlib.sha256(token.encode()).digest()
    record = {"k": userid, "h": digest, "c": now, "s": now, "e": now + MAX_AGE * 1000}
    return msgpack.packb(record | {"ip": ip, "ua": user_agent})  # type: ignore[no-any-return]


def make_app(
    policy: Any = None,
    *,
    session_factory: Any = None,
    settings: dict[str, Any] | None = None,
    properties: Iterable[str] = (),
) -> Any:
    """The variants' app; ``settings`` holding ``jeff.store`` includes pyramid_jeff."""
    with Configurator(settings=settings or {}, root_factory=Root) as config:
        if settings and "jeff.store" in settings:
            config.include("pyramid_jeff")
        for name in properties:
            config.add_request_method(lambda request: None, name, reify=True)
        if policy is not None:
            config.set_security_policy(policy)
        if session_factory is not None:
            config.set_session_factory(session_factory)
        protected = policy is not None or bool(settings)
        config.add_route("private", "/private")
        config.add_route("login", "/login", request_method="POST")
        config.add_view(
            private_view, route_name="private", permission="view" if protected else None
        )
        config.add_view(login_view, route_name="login")
        return config.make_wsgi_app()


def jeff_app(store: Any) -> Any:
    # plain http in the HTTP run; max_sessions at its most, room for the "many" section
    settings = {"jeff.store": store, "jeff.cookie_secure": "false", "jeff.max_sessions": "1000"}
    return make_app(settings=settings)


def psr_app(url: str) -> Any:
    from pyramid_session_redis import RedisSessionFactory

    # the library's defaults, as users get them
    return make_app(SessionPolicy(), session_factory=RedisSessionFactory(SECRET, redis_url=url))


def floor_app(client: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda url: make_app(FloorPolicy(client(url)))


@dataclass(frozen=True)
class Variant:
    label: str
    build: Callable[[str], Any]  # redis_url -> WSGI app
    uses_redis: bool


# fmt: off
VARIANTS: dict[str, Variant] = {name: Variant(*spec) for name, *spec in [
    ("bare", "bare Pyramid", lambda url: make_app(), False),
    ("bare-props", "bare + 2 reified request properties",
     lambda url: make_app(properties=("user", "tenant")), False),
    ("null-policy", "policy floor: constant identity + ACL",
     lambda url: make_app(NullPolicy()), False),
    ("floor-memory", "floor on a dict: unpack + compare", floor_app(lambda _: MemoryKV()), False),
    ("authtkt", "AuthTktCookieHelper", lambda url: make_app(AuthTktPolicy()), False),
    ("signedcookie", "SignedCookieSession + SessionAuthHelper", lambda url: make_app(
        SessionPolicy(), session_factory=SignedCookieSessionFactory(SECRET)), False),
    ("psr", "pyramid_session_redis (defaults)", psr_app, True),
    ("floor", "floor: 1 GET + unpack + compare", floor_app(redis_client), True),
    ("floor-py", "floor, redis-py pure-Python parser",
     floor_app(lambda url: redis_client(url, "python")), True),
    ("floor-hiredis", "floor, redis-py + hiredis",
     floor_app(lambda url: redis_client(url, "hiredis")), True),
    ("floor-conn", "floor, jeff's command path (pooled connection)", floor_app(PooledKV), True),
    ("floor-raw", "floor, raw-socket RESP", floor_app(RawRESP), True),
    ("jeff-memory", "pyramid_jeff (memory)", lambda url: jeff_app("memory://"), False),
    ("jeff-redis", "pyramid_jeff (Redis)", jeff_app, True),
]}
# fmt: on


def build(name: str, redis_url: str) -> Any:
    return VARIANTS[name].build(redis_url)

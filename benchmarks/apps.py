"""The benchmark's variant apps: one tiny Pyramid app per session library.

Every app has the same two routes and the same root factory, so the only difference between
variants is the security policy (and session factory) under test:

* ``GET /private``: a view protected by the ``view`` permission, granted by an ACL to
  ``Authenticated`` (the bare app has no policy and no permission on it);
* ``POST /login?u=<userid>``: calls ``pyramid.security.remember(request, userid)`` and returns
  its headers (session-based peers set their cookie from a response callback).

``build(name, redis_url)`` returns the WSGI app of a variant; ``VARIANTS`` lists them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import msgpack
import redis
from pyramid.authentication import AuthTktCookieHelper, SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember
from pyramid.session import SignedCookieSessionFactory

SECRET = "benchmark-secret-not-for-production-0123456789abcdef"
MAX_AGE = 30 * 24 * 3600  # the same absolute lifetime everywhere: jeff's default, 30 days
# A current desktop Chrome UA (about 110 characters): logins store it, so its size matters.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CLIENT_IP = "203.0.113.7"
REDIS_TIMEOUT = 1.0  # every Redis client below gets jeff's default timeouts, so none is favoured


class Root:
    """Same root for every variant: authenticated users may ``view``."""

    __acl__: ClassVar[list[tuple[str, str, str]]] = [(Allow, Authenticated, "view")]

    def __init__(self, request: Request) -> None:
        self.request = request


_ACL = ACLHelper()


def private_view(request: Request) -> Response:
    return Response(b"hello, member\n", content_type="text/plain")


def login_view(request: Request) -> Response:
    headers = remember(request, request.GET["u"])
    return Response(b"welcome\n", content_type="text/plain", headerlist=list(headers))


# --------------------------------------------------------------------------------------------
# Security policies of the peers. They cache their identity on the request, as any real policy
# should, so that a second lookup in the same request costs nothing.


class _CachedPolicy:
    """ACL-based permits over an ``_identify(request) -> userid | None`` hook."""

    _attr = "_bench_userid"

    def _identify(self, request: Request) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def identity(self, request: Request) -> str | None:
        try:
            return request.__dict__[self._attr]  # type: ignore[no-any-return]
        except KeyError:
            userid = request.__dict__[self._attr] = self._identify(request)
            return userid

    def authenticated_userid(self, request: Request) -> str | None:
        return self.identity(request)

    def permits(self, request: Request, context: Any, permission: str) -> Any:
        userid = self.identity(request)
        principals = [Everyone] if userid is None else [Everyone, Authenticated, userid]
        return _ACL.permits(context, principals, permission)

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        raise NotImplementedError

    def forget(self, request: Request, **kw: Any) -> list[tuple[str, str]]:
        return []


class AuthTktPolicy(_CachedPolicy):
    """Pyramid's signed ticket cookie (stateless, sha512 HMAC)."""

    def __init__(self) -> None:
        self.helper = AuthTktCookieHelper(SECRET, hashalg="sha512", max_age=MAX_AGE)

    def _identify(self, request: Request) -> str | None:
        ident = self.helper.identify(request)
        return None if ident is None else ident["userid"]

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return self.helper.remember(request, userid, **kw)  # type: ignore[no-any-return]


class SessionPolicy(_CachedPolicy):
    """Pyramid's ``SessionAuthenticationHelper`` over whatever session factory is configured."""

    def __init__(self) -> None:
        self.helper = SessionAuthenticationHelper()

    def _identify(self, request: Request) -> str | None:
        return self.helper.authenticated_userid(request)  # type: ignore[no-any-return]

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return self.helper.remember(request, userid, **kw)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# The floor: the least a server-side, revocable login can do per request. The cookie holds a
# random session id and a 256-bit token; Redis keeps, per session, one msgpack record with a
# SHA-256 of the token (never the token), the key and the times. Verify = one GET + unpack +
# constant-time compare (+ one SHA-256 of the cookie token, which any store-only-a-hash design
# needs). Login = one SET with a TTL. It has none of jeff's features (listing, revoke-all by key,
# max sessions, idle timeout, last_seen): it is the cost to beat, not a design to copy.


class RawRedisGet:
    """A lean RESP client for GET/SET only: one ``sendall`` and buffered reads, per thread."""

    def __init__(self, host: str, port: int, timeout: float = REDIS_TIMEOUT) -> None:
        self.addr = (host, port)
        self.timeout = timeout
        self._local = threading.local()

    def _conn(self) -> tuple[socket.socket, Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            sock = socket.create_connection(self.addr, timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self._local.conn = (sock, sock.makefile("rb"))
        return conn  # type: ignore[no-any-return]

    def _bulk(self, reader: Any) -> bytes | None:
        line = reader.readline()
        if line[:1] == b"$":
            size = int(line[1:-2])
            return None if size < 0 else reader.read(size + 2)[:-2]  # type: ignore[no-any-return]
        if line[:1] == b"+":
            return line[1:-2]  # type: ignore[no-any-return]
        raise redis.ResponseError(line.decode(errors="replace").strip())

    def get(self, key: bytes) -> bytes | None:
        sock, reader = self._conn()
        sock.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
        return self._bulk(reader)

    def set(self, key: bytes, value: bytes, px: int) -> Any:
        sock, reader = self._conn()
        ttl = str(px).encode()
        sock.sendall(
            b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nPX\r\n$%d\r\n%s\r\n"
            % (len(key), key, len(value), value, len(ttl), ttl)
        )
        return self._bulk(reader)


class PooledConnKV:
    """GET/SET the way pyramid_jeff's ``RedisStore`` runs a command: check a connection out of
    a ``BlockingConnectionPool`` (jeff's settings), ``send_command`` + ``read_response``,
    release; no ``Redis.execute_command``. The floor on jeff's own command path."""

    def __init__(self, url: str) -> None:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=50,
            timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )

    def _command(self, *args: Any) -> Any:
        pool = self.pool
        connection = pool.get_connection()
        try:
            connection.send_command(*args)
            return connection.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)

    def get(self, key: bytes) -> bytes | None:
        return self._command("GET", key)  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes, px: int) -> Any:
        return self._command("SET", key, value, "PX", px)


class MemoryKV:
    """The floor's store in a dict (with expiry checked by the policy): the memory floor."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def set(self, key: bytes, value: bytes, px: int) -> None:
        self.data[key] = value


class NullPolicy(_CachedPolicy):
    """Every request is user "alice": what Pyramid's security machinery costs by itself."""

    def _identify(self, request: Request) -> str | None:
        return "alice"

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        return [("Set-Cookie", "null=1; Path=/; HttpOnly")]


def redis_client(url: str, parser: str = "default") -> redis.Redis:
    """A redis-py client with jeff's timeouts and no retries; ``parser`` picks the reply parser."""
    kwargs: dict[str, Any] = {
        "socket_timeout": REDIS_TIMEOUT,
        "socket_connect_timeout": REDIS_TIMEOUT,
        "max_connections": 50,
    }
    if parser == "python":
        from redis._parsers import _RESP2Parser

        kwargs["parser_class"] = _RESP2Parser
    elif parser == "hiredis":
        from redis._parsers import _HiredisParser
        from redis.utils import HIREDIS_AVAILABLE

        if not HIREDIS_AVAILABLE:
            raise RuntimeError(
                "hiredis is not installed (pip install -r benchmarks/requirements.txt)"
            )
        kwargs["parser_class"] = _HiredisParser
    pool = redis.ConnectionPool.from_url(url, **kwargs)
    return redis.Redis(connection_pool=pool)  # the pool's kwargs leave retries at 0


class FloorPolicy(_CachedPolicy):
    cookie = "floor"
    prefix = b"floor:"

    def __init__(self, client: Any) -> None:
        # anything with .get(key) and .set(key, value, px=...): redis-py, PooledConnKV, RawRedisGet
        self.client = client

    def _identify(self, request: Request) -> str | None:
        value = request.cookies.get(self.cookie)
        if not value or len(value) > 100:
            return None
        sid, _, token = value.partition(".")
        raw = self.client.get(self.prefix + sid.encode())
        if raw is None:
            return None
        record = msgpack.unpackb(raw)
        digest = hashlib.sha256(token.encode()).digest()
        if not hmac.compare_digest(record["h"], digest) or record["e"] < time.time() * 1000:
            return None
        return record["k"]  # type: ignore[no-any-return]

    def remember(self, request: Request, userid: str, **kw: Any) -> list[tuple[str, str]]:
        sid = secrets.token_urlsafe(16)
        token = secrets.token_urlsafe(32)
        now = int(time.time() * 1000)
        record = msgpack.packb(
            {
                "k": userid,
                "h": hashlib.sha256(token.encode()).digest(),
                "c": now,
                "s": now,
                "e": now + MAX_AGE * 1000,
                "ip": request.remote_addr,
                "ua": request.user_agent,
            }
        )
        self.client.set(self.prefix + sid.encode(), record, px=MAX_AGE * 1000)
        cookie = f"{self.cookie}={sid}.{token}; Max-Age={MAX_AGE}; Path=/; HttpOnly; SameSite=Lax"
        return [("Set-Cookie", cookie)]


# --------------------------------------------------------------------------------------------
# App assembly


def make_app(
    *,
    policy: Any = None,
    session_factory: Any = None,
    settings: dict[str, str] | None = None,
    include: Iterable[str] = (),
    request_properties: Iterable[str] = (),
) -> Any:
    with Configurator(settings=settings or {}, root_factory=Root) as config:
        for name in include:
            config.include(name)
        for prop in request_properties:
            config.add_request_method(_lazy_none, prop, reify=True)
        if policy is not None:
            config.set_security_policy(policy)
        if session_factory is not None:
            config.set_session_factory(session_factory)
        protected = policy is not None or bool(include)
        config.add_route("private", "/private")
        config.add_route("login", "/login", request_method="POST")
        config.add_view(
            private_view, route_name="private", permission="view" if protected else None
        )
        config.add_view(login_view, route_name="login")
        return config.make_wsgi_app()


def _lazy_none(request: Request) -> None:
    return None


def _jeff_settings(store: str) -> dict[str, str]:
    return {
        "jeff.store": store,
        "jeff.cookie_secure": "false",  # plain http in the HTTP run; same cookie name everywhere
        "jeff.max_sessions": "1000",  # the most one key may hold: room for the "many" run
    }


def _psr_factory(url: str) -> Any:
    from pyramid_session_redis import RedisSessionFactory

    return RedisSessionFactory(SECRET, redis_url=url)  # the library's defaults, as users get them


def _floor(url: str, parser: str = "default") -> Any:
    return make_app(policy=FloorPolicy(redis_client(url, parser)))


def _floor_conn(url: str) -> Any:
    return make_app(policy=FloorPolicy(PooledConnKV(url)))


def _floor_raw(url: str) -> Any:
    parts = urlsplit(url)
    return make_app(
        policy=FloorPolicy(RawRedisGet(parts.hostname or "127.0.0.1", parts.port or 6379))
    )


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    build: Callable[[str], Any]  # redis_url -> WSGI app
    uses_redis: bool
    description: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant(
            "bare",
            "bare Pyramid",
            lambda url: make_app(),
            False,
            "no security policy, unprotected view: the unit of every ratio",
        ),
        Variant(
            "bare-props",
            "bare + 2 reified request properties",
            lambda url: make_app(request_properties=("user", "tenant")),
            False,
            "no policy; add_request_method(reify=True) twice, as many apps do (request.user)",
        ),
        Variant(
            "null-policy",
            "policy floor: constant identity + ACL",
            lambda url: make_app(policy=NullPolicy()),
            False,
            "a policy that does no work: Pyramid's own cost of a protected view",
        ),
        Variant(
            "floor-memory",
            "floor on a dict: unpack + compare",
            lambda url: make_app(policy=FloorPolicy(MemoryKV())),
            False,
            "the floor with a dict for a store: the in-memory floor",
        ),
        Variant(
            "authtkt",
            "AuthTktCookieHelper",
            lambda url: make_app(policy=AuthTktPolicy()),
            False,
            "signed stateless ticket cookie (sha512), not revocable",
        ),
        Variant(
            "signedcookie",
            "SignedCookieSession + SessionAuthHelper",
            lambda url: make_app(
                policy=SessionPolicy(), session_factory=SignedCookieSessionFactory(SECRET)
            ),
            False,
            "whole session pickled+signed in the cookie, not revocable",
        ),
        Variant(
            "psr",
            "pyramid_session_redis (defaults)",
            lambda url: make_app(policy=SessionPolicy(), session_factory=_psr_factory(url)),
            True,
            "server-side pickled session in Redis + SessionAuthenticationHelper",
        ),
        Variant(
            "floor",
            "floor: 1 GET + unpack + compare",
            _floor,
            True,
            "minimal server-side policy on redis-py (installed default parser)",
        ),
        Variant(
            "floor-py",
            "floor, redis-py pure-Python parser",
            lambda url: _floor(url, "python"),
            True,
            "same floor, _RESP2Parser forced",
        ),
        Variant(
            "floor-hiredis",
            "floor, redis-py + hiredis",
            lambda url: _floor(url, "hiredis"),
            True,
            "same floor, _HiredisParser forced",
        ),
        Variant(
            "floor-conn",
            "floor, jeff's command path (pooled connection)",
            _floor_conn,
            True,
            "same floor, each command on a pooled connection's send_command/read_response, "
            "as RedisStore runs it (no Redis.execute_command)",
        ),
        Variant(
            "floor-raw",
            "floor, raw-socket RESP",
            _floor_raw,
            True,
            "same floor over a 40-line socket client: the leanest command path",
        ),
        Variant(
            "jeff-memory",
            "pyramid_jeff (memory)",
            lambda url: make_app(settings=_jeff_settings("memory://"), include=["pyramid_jeff"]),
            False,
            "config.include('pyramid_jeff'), jeff.store = memory://",
        ),
        Variant(
            "jeff-redis",
            "pyramid_jeff (Redis)",
            lambda url: make_app(settings=_jeff_settings(url), include=["pyramid_jeff"]),
            True,
            "config.include('pyramid_jeff'), jeff.store = the private Redis",
        ),
    ]
}

JEFF_VARIANTS = ("jeff-memory", "jeff-redis")


def jeff_available() -> bool:
    try:
        import pyramid_jeff  # noqa: F401
    except Exception:
        return False
    return True

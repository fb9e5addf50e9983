"""pyramid_jeff: server-side, revocable login sessions for Pyramid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.config.predicates import DEFAULT_PHASH
from pyramid.events import NewResponse
from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden
from pyramid.interfaces import (
    IExceptionViewClassifier,
    IMultiView,
    IRequest,
    ISecuredView,
    IView,
)
from pyramid.tweens import INGRESS
from redis.exceptions import RedisClusterException, RedisError
from zope.interface import implementedBy

from .cookies import CookieProfile
from .credentials import Credential
from .csrf import JeffCSRFStoragePolicy
from .derivers import passive, recent_login
from .errors import ReauthenticationRequired, StoreUnavailable, TooManySessions
from .events import EveryoneRevoked, RegistryEvents, SessionCreated, SessionEnded
from .manager import SessionManager
from .memory_store import MemoryStore
from .policy import JeffSecurityPolicy, jeff_policy
from .redirects import safe_return_path
from .redis_store import RedisStore
from .request import find_state
from .session import Session
from .settings import JeffSettings, parse_settings
from .store import STORE_METHODS, SessionStore
from .tween import response_subscriber
from .views import ForbiddenView, login_reason, store_unavailable_view

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request

__all__ = [
    "Credential",
    "EveryoneRevoked",
    "JeffCSRFStoragePolicy",
    "JeffSecurityPolicy",
    "MemoryStore",
    "ReauthenticationRequired",
    "RedisStore",
    "Session",
    "SessionCreated",
    "SessionEnded",
    "SessionManager",
    "SessionStore",
    "StoreUnavailable",
    "TooManySessions",
    "bearer_token",
    "csrf_applies",
    "includeme",
    "safe_return_path",
]


def bearer_token(request: Request) -> str | None:
    """The credential ``remember()`` issued in this request, for an API client to send
    as ``Authorization: Bearer <value>`` (``jeff.bearer = true``); ``None`` if this
    request logged nobody in. The session is kept even when the response sets no
    cookie. Treat the value as a password: it is one."""
    return jeff_policy(request.registry).bearer_token(request)


def csrf_applies(request: Request) -> bool:
    """For ``config.set_default_csrf_options(require_csrf=True, callback=csrf_applies)``:
    a request authenticated by a bearer credential carries no ambient authority, so
    it needs no CSRF token; every other request does."""
    state = find_state(request)
    if state is None:
        jeff_policy(request.registry).state(request)
        state = find_state(request)
    return not (state is not None and state.bearer and state.credential is not None)


def make_store(settings: JeffSettings, raw_settings: dict[str, Any]) -> SessionStore:
    """The store ``jeff.store`` names (see :func:`includeme`)."""
    if callable(settings.store):
        store = settings.store(raw_settings)
        if not isinstance(store, SessionStore):
            missing = [name for name in STORE_METHODS if not callable(getattr(store, name, None))]
            lacking = ", ".join(missing) or "the right methods"
            raise ConfigurationError(
                "jeff.store: the factory did not return a store (got "
                f"{type(store).__name__}, without {lacking}; see pyramid_jeff.SessionStore)"
            )
        return store
    kind = settings.store_kind
    if kind == "memory":
        return MemoryStore()
    try:
        if kind == "memcached":
            return _memcached_store(settings)
        if kind == "sql":
            return _sql_store(settings)
        return RedisStore.from_url(
            settings.store,
            socket_timeout=settings.redis_socket_timeout,
            socket_connect_timeout=settings.redis_socket_connect_timeout,
            max_connections=settings.redis_max_connections,
            key_prefix=settings.redis_key_prefix,
            cluster=settings.redis_cluster,
        )
    except (ValueError, RedisError, RedisClusterException) as exc:
        # A malformed URL, a driver that is not installed, or (Redis Cluster, which maps
        # its slots when created) a cluster that cannot be reached at start-up.
        raise ConfigurationError(f"jeff.store: {exc} (got {settings.store!r})") from None


def _missing_extra(extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"jeff.store: this store needs pip install 'pyramid_jeff[{extra}]' ({exc})"
    )


def _memcached_store(settings: JeffSettings) -> SessionStore:
    try:
        from .memcached_store import MemcachedStore
    except ImportError as exc:
        raise _missing_extra("memcached", exc) from None
    return MemcachedStore.from_url(
        str(settings.store),
        socket_timeout=settings.memcached_socket_timeout,
        socket_connect_timeout=settings.memcached_socket_connect_timeout,
        max_connections=settings.memcached_max_connections,
        key_prefix=settings.memcached_key_prefix,
    )


def _sql_store(settings: JeffSettings) -> SessionStore:
    try:
        from .sql_store import SQLStore
    except ImportError as exc:
        raise _missing_extra("sql", exc) from None
    return SQLStore.from_url(
        str(settings.store),
        table=settings.sql_table,
        timeout=settings.sql_timeout,
        pool_size=settings.sql_pool_size,
    )


# After every ordinary configuration action (Pyramid's latest phase is order 0).
LAST_ACTION_ORDER = 1000


def _autocommitted(config: Configurator) -> Configurator:
    """A configurator on the same registry that registers at once: for our actions,
    which run while the configuration commits."""
    from pyramid.config import Configurator

    return Configurator(registry=config.registry, package=config.package, autocommit=True)


def _has_exception_view(registry: Registry, context: type[Exception]) -> bool:
    """Whether the application registered a view without predicates for exactly
    ``context`` (a forbidden view: ``HTTPForbidden``)."""
    required = (IExceptionViewClassifier, IRequest, implementedBy(context))
    for view_type in (IView, ISecuredView, IMultiView):
        view = registry.adapters.registered(required, view_type, "")
        if view is None:
            continue
        if IMultiView.providedBy(view):
            return any(phash == DEFAULT_PHASH for _, _, phash in view.views)
        return bool(getattr(view, "__phash__", DEFAULT_PHASH) == DEFAULT_PHASH)
    return False


def _add_default_views(config: Configurator, view: ForbiddenView, redirect: Any) -> None:
    registering = _autocommitted(config)
    if not _has_exception_view(config.registry, HTTPForbidden):
        registering.add_forbidden_view(view)
    # A login too old for a jeff_recent_login view is sent to log in again, as an
    # anonymous request would be, even where the application's own forbidden view
    # (which sees an authenticated request) would answer 403.
    if not _has_exception_view(config.registry, ReauthenticationRequired):
        registering.add_exception_view(redirect or view, context=ReauthenticationRequired)


def includeme(config: Configurator) -> None:
    """Activate pyramid_jeff: ``config.include("pyramid_jeff")``.

    Registers the security policy, the tween, ``request.jeff_session``,
    ``request.jeff`` and ``request.jeff_login_reason``, the view options
    ``jeff_recent_login`` and ``jeff_passive`` (:mod:`pyramid_jeff.derivers`), the
    forbidden view and a 503 view for ``StoreUnavailable``; :mod:`pyramid_jeff.events`
    go to the application's subscribers.
    Settings (all optional; an unknown ``jeff.*`` key or a bad value raises
    ``ConfigurationError`` naming the key; an empty value means "not set"):

    ``jeff.store`` (``memory://``)
        ``memory://`` (this process only), ``redis://host:port/db``, ``rediss://...``,
        ``unix:///path?db=0``, ``memcached://host:port[,host:port...]`` (extra
        ``pyramid_jeff[memcached]``), a SQLAlchemy URL of SQLite, PostgreSQL or
        MySQL/MariaDB such as ``postgresql+psycopg://user@host/db`` (extra
        ``pyramid_jeff[sql]``), or the dotted name of a factory ``(settings) -> store``.
        Timeouts and pool sizes come from the ``jeff.redis.*``, ``jeff.memcached.*`` and
        ``jeff.sql.*`` settings, never the URL.
    ``jeff.cookie_name`` (``jeff``)
        Gets the ``__Host-`` prefix when the cookie is Secure, Path=/ and has no Domain,
        else ``__Secure-`` when it is Secure.
    ``jeff.cookie_secure`` (``true``)
        Set ``false`` only for plain-http development.
    ``jeff.cookie_samesite`` (``Lax``)
        ``Strict``, ``Lax`` or ``None`` (``None`` requires Secure).
    ``jeff.cookie_domain`` (unset: host-only) and ``jeff.cookie_path`` (``/``)
    ``jeff.max_age`` (``2592000``, 30 days)
        Absolute lifetime of a session in seconds (at most 400 days); also the cookie's
        ``Max-Age``. ``remember(request, key, max_age=...)`` chooses it per login.
    ``jeff.persistent`` (``true``)
        Default of ``remember(..., persistent=...)``: ``false`` gives browser-session
        cookies (no ``Max-Age``); the server still ends the session at its max age.
    ``jeff.idle_timeout`` (``0``, off)
        Seconds without a request after which a session is dead. ``last_seen`` is
        refreshed at most once a minute, or every quarter of the idle timeout if less.
    ``jeff.max_sessions`` (``32``)
        Sessions one key may hold (1 to 1000).
    ``jeff.max_sessions_policy`` (``evict``)
        A login past ``jeff.max_sessions``: ``evict`` ends the key's oldest session,
        ``reject`` makes ``remember()`` raise :class:`TooManySessions`.
    ``jeff.record_ip`` (``full``)
        The login's IP address kept with its session: ``full``, ``truncated`` (an IPv4
        /24, an IPv6 /48) or ``none``.
    ``jeff.record_user_agent`` (``true``)
        Keep the login's User-Agent (at most 256 characters) with its session.
    ``jeff.bearer`` (``false``)
        Also accept the credential as ``Authorization: Bearer <value>`` (API clients;
        see :func:`bearer_token`); a request carrying both a bearer credential and our
        cookie is anonymous.
    ``jeff.login_url`` (``/``)
        Where anonymous requests to a forbidden view are sent, with ``next=<path>``.
    ``jeff.redirect`` (unset)
        Dotted name of a view, ``(request)`` or ``(context, request)``, that replaces
        the redirect for anonymous requests to a forbidden view.
    ``jeff.groupfinder`` (unset)
        Dotted ``(key, request) -> iterable of principals``, added to
        ``[Everyone, Authenticated, key]``; returning ``None`` makes the request
        anonymous.
    ``jeff.identity_loader`` (unset)
        Dotted ``(session, request) -> object or None``: what ``request.identity`` is
        (e.g. the user row); ``None`` makes the request anonymous. Default: the Session.
    ``jeff.csrf`` (``false``)
        Use :class:`JeffCSRFStoragePolicy`: CSRF tokens kept with the login session.
    ``jeff.redis.socket_timeout`` (``1.0``) / ``jeff.redis.socket_connect_timeout`` (``1.0``)
        Seconds (above 0, at most 60). Inside a request, all its Redis waits (commands,
        connecting, a free pooled connection) share one budget of ``socket_timeout``;
        outside one, each command / connection attempt / pool wait has its own. No
        retries.
    ``jeff.redis.max_connections`` (``50``)
        Connections per process.
    ``jeff.redis.key_prefix`` (``jeff:``)
        Prefix of the Redis keys (no braces).
    ``jeff.redis.cluster`` (``false``)
        Connect with ``redis.RedisCluster`` to the node named by a ``redis://`` or
        ``rediss://`` ``jeff.store``; the cluster must answer at start-up.
    ``jeff.memcached.socket_timeout`` (``1.0``)
        Seconds (above 0, at most 60): as ``jeff.redis.socket_timeout``, one budget of
        memcached waits per request.
    ``jeff.memcached.socket_connect_timeout`` (``1.0``)
        Seconds (above 0, at most 60) to open a connection.
    ``jeff.memcached.max_connections`` (``50``)
        Connections per memcached server and process.
    ``jeff.memcached.key_prefix`` (``jeff:``)
        Prefix of every memcached key (printable ASCII, at most 32 characters).
    ``jeff.sql.table`` (``jeff_sessions``)
        The session table, created when missing.
    ``jeff.sql.timeout`` (``1.0``)
        Seconds (above 0, at most 60) a request may wait on the database in total:
        a pooled connection, connecting, each statement and its locks.
    ``jeff.sql.pool_size`` (``10``)
        Database connections per process (the store's own engine, never the
        application's).
    """
    raw_settings = config.get_settings()
    settings = parse_settings(raw_settings, config.maybe_dotted)
    manager = SessionManager(
        make_store(settings, raw_settings),
        max_age=settings.max_age,
        idle_timeout=settings.idle_timeout,
        max_sessions=settings.max_sessions,
        max_sessions_policy=settings.max_sessions_policy,
        events=RegistryEvents(config.registry),
    )
    cookie = CookieProfile.build(
        settings.cookie_name,
        path=settings.cookie_path,
        domain=settings.cookie_domain,
        secure=settings.cookie_secure,
        samesite=settings.cookie_samesite,
    )
    csrf_cookie = None
    if settings.csrf:
        csrf_cookie = CookieProfile.build(
            f"{settings.cookie_name}_csrf",
            path=settings.cookie_path,
            domain=settings.cookie_domain,
            secure=settings.cookie_secure,
            samesite=settings.cookie_samesite,
        )
    policy = JeffSecurityPolicy(
        manager,
        cookie,
        groupfinder=settings.groupfinder,
        identity_loader=settings.identity_loader,
        csrf_cookie=csrf_cookie,
        persistent=settings.persistent,
        record_ip=settings.record_ip,
        record_user_agent=settings.record_user_agent,
        bearer=settings.bearer,
    )
    config.set_security_policy(policy)
    if csrf_cookie is not None:
        config.set_csrf_storage_policy(JeffCSRFStoragePolicy(policy, csrf_cookie))

    def jeff_session(request: Request) -> Session | None:
        return policy.session(request)

    def jeff(request: Request) -> SessionManager:
        return manager.bind(request)

    config.add_request_method(jeff_session, "jeff_session", reify=True)
    config.add_request_method(jeff, "jeff", reify=True)
    config.add_request_method(login_reason, "jeff_login_reason", reify=True)
    config.add_view_deriver(recent_login, "jeff_recent_login")
    config.add_view_deriver(passive, "jeff_passive")
    config.add_tween("pyramid_jeff.tween.jeff_tween_factory", under=INGRESS)
    # Our forbidden view is a default: registered once the whole configuration is known,
    # and only where the application registered no forbidden view of its own (in
    # main, in a module it includes before or after us, or by a scan); the same for
    # the view of ReauthenticationRequired.
    config.action(
        ("pyramid_jeff", "default forbidden view"),
        lambda: _add_default_views(config, ForbiddenView(settings.login_url), settings.redirect),
        order=LAST_ACTION_ORDER,
    )
    # Logins and cache headers are settled last: after response callbacks and after
    # every NewResponse subscriber the application registers (those for the NewResponse
    # class run after those for INewResponse, in order of registration).
    config.action(
        ("pyramid_jeff", "settle responses"),
        lambda: _autocommitted(config).add_subscriber(response_subscriber(policy), NewResponse),
        order=LAST_ACTION_ORDER,
    )
    if settings.redirect is not None:
        config.add_forbidden_view(settings.redirect, is_authenticated=False)
    config.add_exception_view(store_unavailable_view, context=StoreUnavailable)

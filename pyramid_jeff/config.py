"""What ``includeme`` builds from the settings: the store, and the default views that
step aside for the application's own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyramid.exceptions import ConfigurationError
from pyramid.httpexceptions import HTTPForbidden
from pyramid.interfaces import (
    IExceptionViewClassifier,
    IMultiView,
    IRequest,
    ISecuredView,
    IView,
)
from redis.exceptions import RedisClusterException, RedisError
from zope.interface import implementedBy

from .cookies import CookieSpec
from .errors import ReauthenticationRequired
from .events import RegistryEvents
from .manager import SessionManager
from .policy import JeffSecurityPolicy
from .settings import JeffSettings
from .stores.memory import MemoryStore
from .stores.protocol import STORE_METHODS, SessionStore
from .stores.redis import RedisStore
from .views import ForbiddenView

if TYPE_CHECKING:
    from pyramid.config import Configurator
    from pyramid.registry import Registry


def build_policy(
    settings: JeffSettings, raw_settings: dict[str, Any], registry: Registry
) -> JeffSecurityPolicy:
    """The security policy, its manager and its store, as the settings say."""
    manager = SessionManager(
        make_store(settings, raw_settings),
        max_age=settings.max_age,
        idle_timeout=settings.idle_timeout,
        max_sessions=settings.max_sessions,
        max_sessions_policy=settings.max_sessions_policy,
        events=RegistryEvents(registry),
    )
    return JeffSecurityPolicy(
        manager,
        _cookie(settings, settings.cookie_name),
        groupfinder=settings.groupfinder,
        identity_loader=settings.identity_loader,
        csrf_cookie=_cookie(settings, f"{settings.cookie_name}_csrf") if settings.csrf else None,
        persistent=settings.persistent,
        record_ip=settings.record_ip,
        record_user_agent=settings.record_user_agent,
        bearer=settings.bearer,
    )


def _cookie(settings: JeffSettings, name: str) -> CookieSpec:
    return CookieSpec.build(
        name,
        path=settings.cookie_path,
        domain=settings.cookie_domain,
        secure=settings.cookie_secure,
        samesite=settings.cookie_samesite,
    )


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


def _memcached_store(settings: JeffSettings) -> SessionStore:
    try:
        from .stores.memcached import MemcachedStore
    except ImportError as exc:
        raise _missing_extra("memcached", "pymemcache>=4.0", exc) from None
    return MemcachedStore.from_url(
        str(settings.store),
        socket_timeout=settings.memcached_socket_timeout,
        socket_connect_timeout=settings.memcached_socket_connect_timeout,
        max_connections=settings.memcached_max_connections,
        key_prefix=settings.memcached_key_prefix,
    )


def _sql_store(settings: JeffSettings) -> SessionStore:
    try:
        from .stores.sql import SQLStore
    except ImportError as exc:
        raise _missing_extra("sql", "SQLAlchemy>=2.0", exc) from None
    return SQLStore.from_url(
        str(settings.store),
        table=settings.sql_table,
        timeout=settings.sql_timeout,
        pool_size=settings.sql_pool_size,
    )


def _missing_extra(extra: str, requirement: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"jeff.store: this store needs pip install '{requirement}' "
        f"(the extra pyramid_jeff[{extra}]) ({exc})"
    )


# After every ordinary configuration action (Pyramid's latest phase is order 0).
LAST_ACTION_ORDER = 1000


def autocommitted(config: Configurator) -> Configurator:
    """A configurator on the same registry that registers at once: for our actions,
    which run while the configuration commits."""
    from pyramid.config import Configurator

    return Configurator(registry=config.registry, package=config.package, autocommit=True)


def _has_exception_view(
    registry: Registry, context: type[Exception], predicates: tuple[str, ...] = ()
) -> bool:
    """Whether the application registered a view for exactly ``context`` (a forbidden
    view: ``HTTPForbidden``) with these predicates and no other (``()``: none), as
    Pyramid's texts of them say (``"is_authenticated = False"``)."""
    required = (IExceptionViewClassifier, IRequest, implementedBy(context))
    wanted = sorted(predicates)
    for view_type in (IView, ISecuredView, IMultiView):
        view = registry.adapters.registered(required, view_type, "")
        if view is None:
            continue
        views = [v for _, v, _ in view.views] if IMultiView.providedBy(view) else [view]
        return any(
            sorted(p.text() for p in getattr(v, "__predicates__", ())) == wanted for v in views
        )
    return False


def add_default_views(config: Configurator, view: ForbiddenView, redirect: Any) -> None:
    """Our forbidden views, where the application registered none of its own."""
    registering = autocommitted(config)
    registry = config.registry
    if not _has_exception_view(registry, HTTPForbidden):
        registering.add_forbidden_view(view)
    # jeff.redirect answers anonymous requests, unless the application has its own view
    # for exactly those.
    anonymous = ("is_authenticated = False",)
    if redirect is not None and not _has_exception_view(registry, HTTPForbidden, anonymous):
        registering.add_forbidden_view(redirect, is_authenticated=False)
    # A login too old for a jeff_recent_login view is sent to log in again, as an
    # anonymous request would be, even where the application's own forbidden view
    # (which sees an authenticated request) would answer 403.
    if not _has_exception_view(registry, ReauthenticationRequired):
        registering.add_exception_view(redirect or view, context=ReauthenticationRequired)

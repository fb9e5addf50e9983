"""pyramid_jeff: server-side, revocable login sessions for Pyramid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyramid.config import PHASE2_CONFIG
from pyramid.events import NewResponse
from pyramid.interfaces import ICSRFStoragePolicy, ISecurityPolicy
from pyramid.tweens import INGRESS

from .bearer import bearer_token, csrf_applies
from .config import (
    LAST_ACTION_ORDER,
    add_default_views,
    autocommitted,
    build_policy,
    make_store,
)
from .credentials import Credential
from .csrf import JeffCSRFStoragePolicy
from .derivers import passive, recent_login
from .errors import ReauthenticationRequired, StoreUnavailable, TooManySessions
from .events import EveryoneRevoked, SessionCreated, SessionEnded
from .manager import SessionManager
from .policy import JeffSecurityPolicy, jeff_policy
from .redirects import safe_return_path
from .session import Session
from .settings import JeffSettings, docstring, parse_settings
from .stores import MemoryStore, RedisStore, SessionStore
from .tween import response_subscriber
from .views import ForbiddenView, login_reason, store_unavailable_view

if TYPE_CHECKING:
    from pyramid.config import Configurator
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
    "make_store",
    "safe_return_path",
    "store_unavailable_view",
]


def includeme(config: Configurator) -> None:
    """Activate pyramid_jeff: ``config.include("pyramid_jeff")``.

    Registers the security policy, the tween, ``request.jeff_session``,
    ``request.jeff`` and ``request.jeff_login_reason``, the view options
    ``jeff_recent_login`` and ``jeff_passive`` (:mod:`pyramid_jeff.derivers`), the
    forbidden view and a 503 view for ``StoreUnavailable``; :mod:`pyramid_jeff.events`
    go to the application's subscribers.

    The settings are read when the configuration is committed (``make_wsgi_app()``),
    so ``config.add_settings`` after the include counts. All are optional; an unknown
    ``jeff.*`` key or a bad value raises ``ConfigurationError`` naming the key; an
    empty value means "not set":

    """
    # Filled when the configuration commits; the request methods read the policy here
    # rather than look it up in the registry on every request.
    built: list[JeffSecurityPolicy] = []
    parsed: list[JeffSettings] = []

    def register_policy() -> None:
        registry = config.registry
        settings = parse_settings(registry.settings, config.maybe_dotted)
        policy = build_policy(settings, dict(registry.settings), registry)
        built.append(policy)
        parsed.append(settings)
        registry.registerUtility(policy, ISecurityPolicy)
        if policy.csrf_cookie is not None:
            csrf = JeffCSRFStoragePolicy(policy, policy.csrf_cookie)
            registry.registerUtility(csrf, ICSRFStoragePolicy)

    def register_defaults() -> None:
        if not built:  # the application set a security policy of its own
            return
        policy, settings = built[0], parsed[0]
        add_default_views(config, ForbiddenView(settings.login_url), settings.redirect)
        registering = autocommitted(config)
        if settings.redirect is not None:
            registering.add_forbidden_view(settings.redirect, is_authenticated=False)
        # Logins and cache headers are settled last: after response callbacks and after
        # every NewResponse subscriber the application registers (those for the
        # NewResponse class run after those for INewResponse, in order of registration).
        registering.add_subscriber(response_subscriber(policy), NewResponse)

    def policy_of(request: Request) -> JeffSecurityPolicy:
        return built[0] if built else jeff_policy(request.registry)

    def jeff_session(request: Request) -> Session | None:
        return policy_of(request).session(request)

    def jeff(request: Request) -> SessionManager:
        return policy_of(request).manager.bind(request)

    # The discriminator of config.set_security_policy: an application that sets its own
    # policy in its main() overrides this one, as it would Pyramid's.
    config.action(ISecurityPolicy, register_policy, order=PHASE2_CONFIG)
    # Our forbidden view is a default: registered once the whole configuration is known,
    # and only where the application registered no forbidden view of its own (in
    # main, in a module it includes before or after us, or by a scan); the same for
    # the view of ReauthenticationRequired.
    config.action(("pyramid_jeff", "defaults"), register_defaults, order=LAST_ACTION_ORDER)
    # A property, not reified: remember() and forget() change it within the request.
    config.add_request_method(jeff_session, "jeff_session", property=True)
    config.add_request_method(jeff, "jeff", reify=True)
    config.add_request_method(login_reason, "jeff_login_reason", reify=True)
    config.add_view_deriver(recent_login, "jeff_recent_login")
    config.add_view_deriver(passive, "jeff_passive")
    config.add_tween("pyramid_jeff.tween.jeff_tween_factory", under=INGRESS)
    config.add_exception_view(store_unavailable_view, context=StoreUnavailable)


includeme.__doc__ = (includeme.__doc__ or "") + "\n".join(
    f"    {line}" if line else "" for line in docstring().splitlines()
)

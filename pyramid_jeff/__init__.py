"""pyramid_jeff: server-side, revocable login sessions for Pyramid."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyramid.config import PHASE1_CONFIG, PHASE2_CONFIG
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
from .policy import POLICY_KEY, JeffSecurityPolicy
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
    built: list[tuple[JeffSecurityPolicy, JeffSettings]] = []
    introspectable = config.introspectable(
        "security policy", None, "pyramid_jeff.JeffSecurityPolicy", "security policy"
    )

    def build() -> None:
        registry = config.registry
        settings = parse_settings(registry.settings, config.maybe_dotted)
        policy = build_policy(settings, dict(registry.settings), registry)
        built.append((policy, settings))
        registry[POLICY_KEY] = policy
        if policy.csrf_cookie is not None:
            # Before the application's own config.set_csrf_storage_policy, which wins.
            csrf = JeffCSRFStoragePolicy(policy, policy.csrf_cookie)
            registry.registerUtility(csrf, ICSRFStoragePolicy)

    def register_policy() -> None:
        introspectable["policy"] = built[0][0]
        config.registry.registerUtility(built[0][0], ISecurityPolicy)

    def register_defaults() -> None:
        policy, settings = built[0]
        add_default_views(config, ForbiddenView(settings.login_url), settings.redirect)
        # Logins and cache headers are settled last: after response callbacks and after
        # every NewResponse subscriber the application registers (those for the
        # NewResponse class run after those for INewResponse, in order of registration).
        autocommitted(config).add_subscriber(response_subscriber(policy), NewResponse)

    def jeff_session(request: Request) -> Session | None:
        return built[0][0].session(request)

    def jeff(request: Request) -> SessionManager:
        return built[0][0].manager.bind(request)

    config.action(("pyramid_jeff", "policy"), build, order=PHASE1_CONFIG)
    # The discriminator of config.set_security_policy: an application that sets a policy
    # of its own in its main() (one that delegates to ours, say) overrides this one, as
    # it would Pyramid's; request.jeff and the rest keep working.
    config.action(
        ISecurityPolicy, register_policy, order=PHASE2_CONFIG, introspectables=(introspectable,)
    )
    # Our forbidden view is a default: registered once the whole configuration is known,
    # and only where the application registered no forbidden view of its own (in
    # main, in a module it includes before or after us, or by a scan); the same for
    # the view of ReauthenticationRequired and the anonymous view of jeff.redirect.
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

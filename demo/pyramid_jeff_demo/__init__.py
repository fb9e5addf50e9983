"""A small Pyramid application that shows everything pyramid_jeff does.

Run it with ``pserve development.ini`` (a SQLite store) or ``pserve redis.ini``
(``docker compose up -d`` first), then open http://localhost:6543/.
"""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.router import Router

from pyramid_jeff.events import EveryoneRevoked, SessionCreated, SessionEnded
from pyramid_jeff_demo.audit import REGISTRY_KEY, AuditTrail

# What the demo's own code relies on; an ini file may still override them.
_APP_SETTINGS = {
    # Anonymous visitors of a protected page are sent here, with ?next=<where they were>.
    "jeff.login_url": "/login",
    "jeff.groupfinder": "pyramid_jeff_demo.security.groupfinder",
    "jeff.identity_loader": "pyramid_jeff_demo.security.load_user",
    # The CSRF token of a logged-in browser derives from its login session: it changes at every
    # login and logout, and dies with the session when it is revoked.
    "jeff.csrf": "true",
}

_ROUTES = [
    ("home", "/"),
    ("login", "/login"),
    ("logout", "/logout"),
    ("products", "/products"),
    ("users", "/users"),
    ("sessions", "/sessions"),
    ("revoke", "/sessions/revoke"),
    ("revoke_others", "/sessions/revoke-others"),
    ("admin", "/admin"),
    ("admin_revoke", "/admin/revoke"),
    ("admin_revoke_session", "/admin/revoke-session"),
    ("admin_everyone", "/admin/sign-out-everyone"),
    ("password", "/account/password"),
]


def main(global_config: dict[str, Any] | None, **settings: Any) -> Router:
    """PasteDeploy app factory (``use = egg:pyramid_jeff_demo``)."""
    for name, value in _APP_SETTINGS.items():
        settings.setdefault(name, value)
    with Configurator(settings=settings, root_factory="pyramid_jeff_demo.security.Root") as config:
        config.include("pyramid_jinja2")
        config.include("pyramid_jeff")
        # Every POST (PUT, DELETE, ...) must carry the CSRF token, checked by Pyramid itself.
        config.set_default_csrf_options(require_csrf=True)
        # The audit trail: every login and every ended session, for the admin page and the log.
        trail = AuditTrail()
        config.registry[REGISTRY_KEY] = trail
        for event_type in (SessionCreated, SessionEnded, EveryoneRevoked):
            config.add_subscriber(trail, event_type)
        config.add_static_view("static", "pyramid_jeff_demo:static", cache_max_age=3600)
        for name, pattern in _ROUTES:
            config.add_route(name, pattern)
        config.scan("pyramid_jeff_demo.views")
    return config.make_wsgi_app()

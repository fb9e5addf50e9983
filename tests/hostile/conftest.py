"""The test app on the memory store, for what does not depend on the store."""

from __future__ import annotations

import pytest

from pyramid_jeff.testing import jeff_policy

from ..app import make_wsgi_app
from ..conftest import HTTPS, JeffTestApp


@pytest.fixture
def memory_app() -> JeffTestApp:
    """The test app on the memory store: redirects do not depend on the store."""
    wsgi = make_wsgi_app({"jeff.store": "memory://", "jeff.login_url": "/login"})
    app = JeffTestApp(wsgi, extra_environ=dict(HTTPS))
    app.manager = jeff_policy(wsgi.registry).manager
    return app

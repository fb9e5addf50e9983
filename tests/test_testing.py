"""``pyramid_jeff.testing``, used the way an application's own test suite would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from pyramid_jeff.testing import CountingStore, counting_store, jeff_policy, login

from .helpers import jeff_config


def make_app(**settings: str) -> webtest.TestApp:
    config = jeff_config({"jeff.store": "pyramid_jeff.testing.counting_store", **settings})

    def profile(request: Request) -> Response:
        return Response(f"profile of {request.authenticated_userid}")

    config.add_route("profile", "/profile")
    config.add_view(profile, route_name="profile", is_authenticated=True)
    config.add_view(lambda r: Response("please log in"), route_name="profile")
    return webtest.TestApp(config.make_wsgi_app())


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_login_logs_a_testapp_in_without_a_login_form(scheme: str) -> None:
    app = make_app(**{"jeff.cookie_secure": "true" if scheme == "https" else "false"})
    app.extra_environ["wsgi.url_scheme"] = scheme
    session = login(app, "ann@example.com", meta={"via": "test"})
    assert app.get("/profile").text == "profile of ann@example.com"
    assert session.meta == {"via": "test"}
    app.reset()
    assert app.get("/profile").text == "please log in"


def test_a_counting_store_pins_one_read_per_request() -> None:
    app = make_app()
    store = jeff_policy(app.app.registry).manager.store
    assert isinstance(store, CountingStore)
    login(app, "ann@example.com")
    assert store.calls == {"create": 1}
    store.reset()
    app.get("/profile")
    app.get("/profile")
    assert store.calls == {"get": 2}


def test_login_refuses_an_app_without_pyramid_jeff() -> None:
    app = webtest.TestApp(Configurator().make_wsgi_app())
    with pytest.raises(LookupError, match="pyramid_jeff"):
        login(app, "ann")
    with pytest.raises(TypeError, match="registry="):
        login(webtest.TestApp(lambda environ, start_response: []), "ann")


def test_counting_store_wraps_any_store() -> None:
    inner = counting_store({})
    outer = CountingStore(inner)
    assert outer.list("k") == []
    assert outer.calls == {"list": 1} and inner.calls == {"list": 1}


def test_the_readme_example_runs() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Testing your application\n")
    (example,) = re.findall(
        r"```python\n(.*?)```", readme[start : readme.index("\n## ", start + 1)], re.DOTALL
    )
    namespace: dict[str, Any] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    config = jeff_config(store="pyramid_jeff.testing.counting_store")
    config.add_route("profile", "/profile")
    config.add_view(
        lambda r: Response(f"Your profile, {r.authenticated_userid}"), route_name="profile"
    )
    for test in tests:
        test(webtest.TestApp(config.make_wsgi_app()))

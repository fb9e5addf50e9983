"""pyramid_jeff inside the adopted wiki2 app, next to pyramid_tm and pyramid_retry.

Copied into the app's own ``tests/`` (so it uses the app's conftest: ``app_settings``,
``dbengine``) and run there by ``tests/test_adoption.py``. It is not one of the app's
tests: the file name keeps every collector (ours and the app's) away from it.

Unlike the app's ``testapp`` fixture, which hands every request a shared, doomed
transaction (``tm.active``), these requests go through pyramid_tm for real: it begins,
annotates, commits or aborts each one, and pyramid_retry retries it.
"""

from contextlib import contextmanager

import pytest
import sqlalchemy as sa
import transaction
from pyramid.config import Configurator
from pyramid.scripting import prepare
from tutorial import main, models

from .conftest import TestApp  # the app's own WebTest helper (this file runs in its tests/)
from .jeff_probes import ATTEMPTS, PROBES, USERS, Transient

COOKIE = "jeff"  # jeff.cookie_secure = false: no __Host- prefix


@pytest.fixture(scope="module")
def wsgi_app(app_settings, dbengine):
    """The app's own ``main()``, plus the probe views of jeff_probes.py (two-segment paths, so
    the wiki's ``/{pagename}`` route never matches them)."""
    wsgi = main({}, dbengine=dbengine, **app_settings)
    config = Configurator(registry=wsgi.registry)
    for name, (view, method) in PROBES.items():
        config.add_route(f"jeff_{name}", f"/_jeff/{name}")
        config.add_view(
            view,
            route_name=f"jeff_{name}",
            request_method=method,
            renderer="json",
            require_csrf=False,
        )
    config.commit()
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        dbsession = models.get_tm_session(wsgi.registry["dbsession_factory"], tm)
        for name in USERS:
            user = models.User(name=name, role="basic")
            if name == "ann":  # the only one that logs in through the login form
                user.set_password(name)
            dbsession.add(user)
    return wsgi


@pytest.fixture
def client(wsgi_app):
    ATTEMPTS.clear()
    return TestApp(wsgi_app, extra_environ={"HTTP_HOST": "example.com"})


@contextmanager
def script_request(wsgi_app):
    """A request outside any HTTP request, as in a ``pshell`` or a script."""
    with prepare(registry=wsgi_app.registry) as env:
        request = env["request"]
        with request.tm:
            yield request


def user_id(wsgi_app, name):
    with script_request(wsgi_app) as request:
        query = sa.select(models.User.id).where(models.User.name == name)
        return request.dbsession.scalars(query).one()


def live_sessions(wsgi_app, name):
    """How many live sessions the store holds for user ``name``."""
    key = str(user_id(wsgi_app, name))
    with script_request(wsgi_app) as request:
        return len(request.jeff.sessions(key))


def page_exists(wsgi_app, name):
    with script_request(wsgi_app) as request:
        query = sa.select(sa.exists(models.Page)).where(models.Page.name == name)
        return request.dbsession.execute(query).scalar()


def jeff_set_cookies(response):
    return [h for h in response.headers.getall("Set-Cookie") if h.startswith(COOKIE + "=")]


def log_in(client, name):
    """Log in through the app's own login view and form (CSRF included)."""
    client.set_cookie("csrf_token", "dummy_csrf_token")
    params = {"login": name, "password": name, "csrf_token": "dummy_csrf_token"}
    return client.post("/login", params, status=303)


def probe_login(client, name, **params):
    return client.post("/_jeff/flaky_login", {"login": name, "failures": 0, **params})


# -- pyramid_tm's tm.annotate_user --------------------------------------------------


def test_annotate_user_names_the_logged_in_user(wsgi_app, client):
    assert client.get("/_jeff/whoami").json == {"userid": None, "name": None, "tx_user": ""}
    response = log_in(client, "ann")
    assert len(jeff_set_cookies(response)) == 1
    uid = str(user_id(wsgi_app, "ann"))
    assert client.get("/_jeff/whoami").json == {"userid": uid, "name": "ann", "tx_user": uid}
    client.post("/logout", {"csrf_token": client.get_csrf_token()}, status=303)
    assert client.get("/_jeff/whoami").json["tx_user"] == ""


# -- pyramid_tm aborts after remember() ---------------------------------------------


def test_committed_login_keeps_its_writes(wsgi_app, client):
    """The control for the tests below: nothing aborts, everything stays."""
    response = client.post(
        "/_jeff/login_then_commit", {"login": "abe", "page": "AbePage"}, status=303
    )
    assert len(jeff_set_cookies(response)) == 1
    assert page_exists(wsgi_app, "AbePage")
    assert client.get("/_jeff/whoami").json["name"] == "abe"
    assert live_sessions(wsgi_app, "abe") == 1


def test_exception_after_remember_sends_no_cookie_and_leaves_no_session(wsgi_app, client):
    with pytest.raises(RuntimeError):
        client.post("/_jeff/login_then_raise", {"login": "bob", "page": "BobPage"})
    assert not page_exists(wsgi_app, "BobPage")  # pyramid_tm aborted the transaction
    assert COOKIE not in client.cookies  # no Set-Cookie: the browser is not logged in
    assert client.get("/_jeff/whoami").json["userid"] is None
    # The session remember() wrote never reached a browser: pyramid_jeff ended it.
    assert live_sessions(wsgi_app, "bob") == 0


def test_exception_after_remember_keeps_the_previous_session(wsgi_app, client):
    probe_login(client, "carl")
    uid = str(user_id(wsgi_app, "carl"))
    assert client.get("/_jeff/whoami").json["userid"] == uid
    with pytest.raises(RuntimeError):
        client.post("/_jeff/login_then_raise", {"login": "carl", "page": "CarlPage"})
    # The failed re-login changed nothing: the browser's session still stands, the one
    # remember() made is gone. No surprise logout.
    assert client.get("/_jeff/whoami").json["userid"] == uid
    assert live_sessions(wsgi_app, "carl") == 1


def test_aborted_transaction_with_a_response_still_logs_in(wsgi_app, client):
    """``raise HTTPSeeOther(headers=remember(...))``: pyramid_tm aborts (an exception
    view rendered the response) yet the response, Set-Cookie included, is sent."""
    response = client.post(
        "/_jeff/login_then_raise_redirect", {"login": "dora", "page": "DoraPage"}, status=303
    )
    assert len(jeff_set_cookies(response)) == 1
    assert not page_exists(wsgi_app, "DoraPage")  # the database write was rolled back
    assert client.get("/_jeff/whoami").json["name"] == "dora"  # but the login stands
    assert live_sessions(wsgi_app, "dora") == 1


def test_doomed_transaction_still_logs_in(wsgi_app, client):
    response = client.post(
        "/_jeff/login_then_doom", {"login": "dan", "page": "DanPage"}, status=303
    )
    assert len(jeff_set_cookies(response)) == 1
    assert not page_exists(wsgi_app, "DanPage")
    assert client.get("/_jeff/whoami").json["name"] == "dan"


# -- pyramid_retry ------------------------------------------------------------------


def test_retried_login_logs_in_once(wsgi_app, client):
    response = probe_login(client, "eve", failures=1).maybe_follow()
    # Each attempt is a new request: attempt 1 does not see attempt 0's login.
    assert ATTEMPTS == [(0, None), (1, None)]
    uid = str(user_id(wsgi_app, "eve"))
    assert response.json == {"userid": uid, "name": "eve", "tx_user": uid}
    # Attempt 0's session (its cookie thrown away with its response) was ended.
    assert live_sessions(wsgi_app, "eve") == 1


def test_retried_login_sends_exactly_one_cookie(wsgi_app, client):
    response = probe_login(client, "erin", failures=1)
    assert response.status_int == 303
    assert len(jeff_set_cookies(response)) == 1


def test_retried_read_keeps_the_user_logged_in(wsgi_app, client):
    probe_login(client, "fred")
    uid = str(user_id(wsgi_app, "fred"))
    cookie = client.cookies[COOKIE]
    response = client.get("/_jeff/flaky_whoami")
    assert ATTEMPTS[-2:] == [(0, uid), (1, uid)]
    assert response.json["name"] == "fred"
    assert jeff_set_cookies(response) == []  # nothing to change
    assert client.cookies[COOKIE] == cookie
    assert live_sessions(wsgi_app, "fred") == 1


def test_retried_logout_logs_out(wsgi_app, client):
    probe_login(client, "fiona")
    uid = str(user_id(wsgi_app, "fiona"))
    response = client.post("/_jeff/flaky_logout").maybe_follow()
    # Attempt 0's forget() ended the session in the store: attempt 1 is anonymous.
    assert ATTEMPTS[-2:] == [(0, uid), (1, None)]
    assert response.json["userid"] is None
    assert COOKIE not in client.cookies
    assert live_sessions(wsgi_app, "fiona") == 0


def test_retried_relogin_ends_the_old_session_once(wsgi_app, client):
    probe_login(client, "gus")
    uid = str(user_id(wsgi_app, "gus"))
    old_cookie = client.cookies[COOKIE]
    response = probe_login(client, "gus", failures=1)
    # Attempt 0 failed, so its login was undone and the old session kept: attempt 1
    # starts logged in as before, and its login replaces the old session.
    assert ATTEMPTS[-2:] == [(0, uid), (1, uid)]
    assert len(jeff_set_cookies(response)) == 1
    assert client.cookies[COOKIE] != old_cookie
    assert client.get("/_jeff/whoami").json["name"] == "gus"
    assert live_sessions(wsgi_app, "gus") == 1


def test_exhausted_retries_log_nobody_in(wsgi_app, client):
    with pytest.raises(Transient):
        probe_login(client, "hal", failures=3)  # retry.attempts = 3 in testing.ini
    assert ATTEMPTS == [(0, None), (1, None), (2, None)]
    assert COOKIE not in client.cookies
    assert client.get("/_jeff/whoami").json["userid"] is None
    assert live_sessions(wsgi_app, "hal") == 0  # each attempt's session was ended

"""Functional tests of the demo application (demo/pyramid_jeff_demo/), black-box through WebTest.

Each TestApp is one browser with its own cookie jar; several of them on one app are several
devices of the same user.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import webtest

import pyramid_jeff_demo
import pyramid_jeff_demo.security
from pyramid_jeff_demo.security import DEMO_PASSWORD

ALICE = "alice@example.com"  # admin
BOB = "bob@example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
Browser = Callable[..., webtest.TestApp]


@pytest.fixture
def demo_app(store_url: str) -> object:
    """The demo as development.ini builds it, on each store (conftest's ``store_url``).

    ``jeff.cookie_secure = false``: WebTest speaks plain http, like the development server.
    """
    return pyramid_jeff_demo.main({}, **{"jeff.store": store_url, "jeff.cookie_secure": "false"})


@pytest.fixture
def browser(demo_app: object) -> Browser:
    """A factory of browsers (cookie jars) on one running demo."""

    def make(user_agent: str = FIREFOX, ip: str = "192.0.2.10") -> webtest.TestApp:
        return webtest.TestApp(
            demo_app, extra_environ={"HTTP_USER_AGENT": user_agent, "REMOTE_ADDR": ip}
        )

    return make


def csrf_token(page: webtest.TestResponse) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(
    client: webtest.TestApp, email: str, password: str = DEMO_PASSWORD, next: str | None = None
) -> webtest.TestResponse:
    page = client.get("/login" + (f"?next={quote(next, safe='')}" if next else ""))
    form = page.forms["login-form"]
    form["email"] = email
    form["password"] = password
    return form.submit()


def logged_in(client: webtest.TestApp, email: str) -> webtest.TestApp:
    res = login(client, email)
    assert res.status_int == 303, res
    return client


def location(res: webtest.TestResponse) -> tuple[str, dict[str, list[str]]]:
    """(path, query) of a redirect; the host must be this site."""
    parts = urlsplit(res.headers["Location"])
    assert parts.netloc in ("", "localhost", "localhost:80"), res.headers["Location"]
    return parts.path, parse_qs(parts.query)


def session_cookie(res: webtest.TestResponse) -> str:
    cookies = [v for v in res.headers.getall("Set-Cookie") if v.startswith("jeff=")]
    assert len(cookies) == 1, res.headers.getall("Set-Cookie")
    return cookies[0]


def device_ids(page: webtest.TestResponse) -> list[str]:
    return re.findall(r'data-session-id="([^"]+)"', page.text)


# --- public pages and the login page ---------------------------------------------------------


def test_public_pages_need_no_login_and_set_no_session_cookie(browser: Browser) -> None:
    client = browser()
    for path in ("/", "/products", "/static/demo.css"):
        res = client.get(path)
        assert res.status_int == 200
        assert not [c for c in res.headers.getall("Set-Cookie") if c.startswith("jeff=")]
    assert "browsing anonymously" in client.get("/products").text


def test_login_page_documents_the_demo_users(browser: Browser) -> None:
    page = browser().get("/login")
    assert ALICE in page.text and BOB in page.text
    assert f'<code class="pw">{DEMO_PASSWORD}</code>' in page.text


def test_security_headers(browser: Browser) -> None:
    res = browser().get("/login")
    assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
    assert res.headers["X-Content-Type-Options"] == "nosniff"


# --- logging in and out ----------------------------------------------------------------------


def test_anonymous_is_sent_to_login_and_brought_back(browser: Browser) -> None:
    client = browser()
    res = client.get("/users")
    assert res.status_int == 303
    assert location(res) == ("/login", {"next": ["/users"]})
    page = res.follow()
    assert 'name="next" value="/users"' in page.text
    form = page.forms["login-form"]
    form["email"], form["password"] = BOB, DEMO_PASSWORD
    res = form.submit()
    assert res.status_int == 303
    assert location(res) == ("/users", {})
    assert "Hello, Bob Builder" in res.follow().text


def test_login_sets_a_httponly_lax_cookie_without_the_email(browser: Browser) -> None:
    res = login(browser(), ALICE)
    cookie = session_cookie(res)
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "alice" not in cookie and "example" not in cookie


def test_wrong_password_is_refused(browser: Browser) -> None:
    client = browser()
    res = login(client, ALICE, password="not-the-password")
    assert res.status_int == 200
    assert "Wrong email or password." in res.text
    assert not [c for c in res.headers.getall("Set-Cookie") if c.startswith("jeff=")]
    assert client.get("/users").status_int == 303
    assert "Wrong email or password." in login(client, "nobody@example.com").text


def test_email_is_case_insensitive(browser: Browser) -> None:
    assert login(browser(), "Alice@Example.COM ").status_int == 303


def test_products_shows_who_is_signed_in(browser: Browser) -> None:
    client = logged_in(browser(), ALICE)
    page = client.get("/products")
    assert "Signed in as" in page.text and ALICE in page.text


@pytest.mark.parametrize(
    "evil",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/%2F%2Fevil.example",
        " /\t/evil.example",
    ],
)
def test_login_never_redirects_off_site(browser: Browser, evil: str) -> None:
    client = browser()
    page = client.get(f"/login?next={quote(evil, safe='')}")
    assert 'name="next" value=""' in page.text  # not even carried on by the form
    res = login(client, BOB, next=evil)
    assert location(res) == ("/", {})
    # A forged POST (the hidden field edited) is checked again.
    token = csrf_token(client.get("/login"))
    res = client.post(
        "/login", {"email": BOB, "password": DEMO_PASSWORD, "next": evil, "csrf_token": token}
    )
    assert res.status_int == 303
    assert location(res) == ("/", {})


def test_logout(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    page = client.get("/products")
    res = client.post("/logout", {"csrf_token": csrf_token(page)})
    assert res.status_int == 303
    assert location(res) == ("/login", {})
    assert "max-age=0" in session_cookie(res).lower()
    assert "You are signed out." in res.follow().text
    assert "You are signed out." not in client.get("/login").text  # shown once
    assert client.get("/users").status_int == 303


def test_logout_is_not_a_get(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    client.get("/logout", status=404)
    assert client.get("/users").status_int == 200


# --- CSRF, black box -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, params",
    [
        ("/logout", {}),
        ("/sessions/revoke", {"session_id": "x"}),
        ("/sessions/revoke-others", {}),
        ("/admin/revoke", {"email": BOB}),
    ],
)
def test_every_post_without_a_token_is_refused(browser: Browser, path: str, params: dict) -> None:
    client = logged_in(browser(), ALICE)
    res = client.post(path, params, status=400)
    assert "This form has expired" in res.text
    assert client.get("/users").status_int == 200  # still logged in: nothing happened


def test_login_itself_needs_the_token(browser: Browser) -> None:
    # Login CSRF: a foreign site must not log a visitor in as the attacker.
    client = browser()
    client.post("/login", {"email": BOB, "password": DEMO_PASSWORD}, status=400)
    assert client.get("/users").status_int == 303


def test_stale_token_after_relogin_is_refused(browser: Browser) -> None:
    mine, other = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    stale = csrf_token(mine.get("/sessions"))
    logged_in(mine, BOB)  # a new login session: a new token
    fresh = csrf_token(mine.get("/sessions"))
    assert fresh != stale
    mine.post("/sessions/revoke-others", {"csrf_token": stale}, status=400)
    assert other.get("/users").status_int == 200  # the stale POST changed nothing
    res = mine.post("/sessions/revoke-others", {"csrf_token": fresh})
    assert res.status_int == 303
    assert other.get("/users").status_int == 303


def test_token_of_another_session_is_refused(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    bobs_token = csrf_token(bob.get("/sessions"))
    alice.post("/admin/revoke", {"email": BOB, "csrf_token": bobs_token}, status=400)
    assert bob.get("/users").status_int == 200


def test_right_token_in_the_header_passes(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    token = csrf_token(client.get("/sessions"))
    res = client.post("/sessions/revoke-others", headers={"X-CSRF-Token": token})
    assert res.status_int == 303


def test_anonymous_token_changes_at_login(browser: Browser) -> None:
    client = browser()
    anonymous = csrf_token(client.get("/login"))
    logged_in(client, BOB)
    assert csrf_token(client.get("/sessions")) != anonymous
    client.post("/logout", {"csrf_token": anonymous}, status=400)


# --- your devices ----------------------------------------------------------------------------


def test_devices_lists_every_session_and_marks_this_one(browser: Browser) -> None:
    laptop = logged_in(browser(FIREFOX, "192.0.2.10"), BOB)
    logged_in(browser(PHONE, "198.51.100.7"), BOB)
    logged_in(browser(), ALICE)  # someone else's session is not listed
    page = laptop.get("/sessions")
    assert len(device_ids(page)) == 2
    assert page.text.count("this device</span>") == 1
    assert "Firefox on Linux" in page.text and "Chrome on Android" in page.text
    assert "192.0.2.10" in page.text and "198.51.100.7" in page.text
    this_row = page.text.split('class="device this-device"')[1].split("</tr>")[0]
    assert "Firefox on Linux" in this_row
    assert "UTC" in this_row  # created / last seen


def test_end_one_device(browser: Browser) -> None:
    laptop = logged_in(browser(FIREFOX), BOB)
    phone = logged_in(browser(PHONE), BOB)
    page = laptop.get("/sessions")
    phone_id = page.text.split('class="device"')[1].split('data-session-id="')[1].split('"')[0]
    res = laptop.post("/sessions/revoke", {"session_id": phone_id, "csrf_token": csrf_token(page)})
    assert location(res) == ("/sessions", {})
    assert "That device is signed out." in res.follow().text
    # The phone is out on its very next request, and told to forget its cookie.
    res = phone.get("/users")
    assert res.status_int == 303
    assert location(res) == ("/login", {"next": ["/users"]})
    assert laptop.get("/users").status_int == 200
    assert len(device_ids(laptop.get("/sessions"))) == 1


def test_ending_this_device_is_logging_out(browser: Browser) -> None:
    client = logged_in(browser(), BOB)
    page = client.get("/sessions")
    [mine] = device_ids(page)
    res = client.post("/sessions/revoke", {"session_id": mine, "csrf_token": csrf_token(page)})
    assert location(res) == ("/login", {})
    assert "max-age=0" in session_cookie(res).lower()
    assert "You are signed out." in res.follow().text
    assert client.get("/users").status_int == 303


def test_cannot_end_a_session_of_another_user(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    [alices] = device_ids(alice.get("/sessions"))
    page = bob.get("/sessions")
    res = bob.post("/sessions/revoke", {"session_id": alices, "csrf_token": csrf_token(page)})
    assert location(res) == ("/sessions", {})
    assert "That session had already ended." in res.follow().text
    assert alice.get("/users").status_int == 200


@pytest.mark.parametrize("junk", ["", "nope", "x" * 5000, "é\u0000", "../../etc"])
def test_junk_session_id_is_harmless(browser: Browser, junk: str) -> None:
    client = logged_in(browser(), BOB)
    page = client.get("/sessions")
    res = client.post("/sessions/revoke", {"session_id": junk, "csrf_token": csrf_token(page)})
    assert res.status_int == 303
    assert client.get("/users").status_int == 200


def test_log_out_everywhere_else(browser: Browser) -> None:
    here = logged_in(browser(), BOB)
    others = [logged_in(browser(PHONE), BOB) for _ in range(3)]
    page = here.get("/sessions")
    res = here.post("/sessions/revoke-others", {"csrf_token": csrf_token(page)})
    assert location(res) == ("/sessions", {})
    assert "Signed out 3 other device(s)." in res.follow().text
    assert all(o.get("/users").status_int == 303 for o in others)
    assert here.get("/users").status_int == 200


def test_a_revoked_browser_logging_out_goes_to_login_not_an_error(browser: Browser) -> None:
    laptop, phone = logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)
    stale_page = phone.get("/products")  # its logout form holds its session's token
    page = laptop.get("/sessions")
    laptop.post("/sessions/revoke-others", {"csrf_token": csrf_token(page)})
    res = phone.post("/logout", {"csrf_token": csrf_token(stale_page)})
    assert res.status_int in (302, 303)
    assert location(res)[0] == "/login"


# --- admin -----------------------------------------------------------------------------------


def test_admin_permissions(browser: Browser) -> None:
    res = browser().get("/admin")
    assert res.status_int == 303
    assert res.headers["Location"].endswith("/login?next=%2Fadmin")
    logged_in(browser(), BOB).get("/admin", status=403)
    page = logged_in(browser(), ALICE).get("/admin")
    assert page.status_int == 200 and "End all sessions" in page.text


def test_admin_json_client_gets_401_not_a_redirect(browser: Browser) -> None:
    browser().get("/admin", headers={"Accept": "application/json"}, status=401)


def test_bob_cannot_use_the_admin_form(browser: Browser) -> None:
    alice, bob = logged_in(browser(), ALICE), logged_in(browser(), BOB)
    token = csrf_token(bob.get("/sessions"))
    bob.post("/admin/revoke", {"email": ALICE, "csrf_token": token}, status=403)
    assert alice.get("/admin").status_int == 200


def test_admin_ends_all_sessions_of_a_user(browser: Browser) -> None:
    alice = logged_in(browser(), ALICE)
    bobs = [logged_in(browser(), BOB), logged_in(browser(PHONE), BOB)]
    page = alice.get("/admin")
    row = page.text.split(f'data-email="{BOB}"')[1].split("</tr>")[0]
    assert '<td class="count">2</td>' in row
    res = alice.post("/admin/revoke", {"email": BOB, "csrf_token": csrf_token(page)})
    assert location(res) == ("/admin", {})
    assert f"Ended 2 session(s) of {BOB}." in res.follow().text
    assert all(b.get("/users").status_int == 303 for b in bobs)
    assert alice.get("/admin").status_int == 200


@pytest.mark.parametrize(
    "query",
    [
        "notice=ended-all&n=9&user=%3Cscript%3Ex%3C/script%3E",
        "notice=ended-others&n=999",
        "notice=ended-others&n=%C2%B2",
        "notice=signed-out",
        "notice=You+won+a+prize",
        "kind=ended-others&n=5",
    ],
)
def test_notices_cannot_be_forged_from_a_url(browser: Browser, query: str) -> None:
    client = logged_in(browser(), ALICE)
    for path in ("/admin", "/sessions", "/login"):
        page = client.get(f"{path}?{query}")
        assert page.status_int == 200
        assert 'class="notice"' not in page.text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("kind=ended-others&n=%C2%B2", "Signed out 0 other device(s)."),  # not a digit
        ("kind=ended-all&n=1&user=%3Cscript%3E", "Ended 1 session(s) of that user."),
        ("kind=nope", None),
        ("%%%", None),
        ("n=1", None),
    ],
)
def test_a_tampered_notice_cookie_is_harmless(
    browser: Browser, value: str, shown: str | None
) -> None:
    client = logged_in(browser(), ALICE)
    client.set_cookie("demo_notice", value)
    page = client.get("/sessions")
    assert page.status_int == 200
    if shown is None:
        assert 'class="notice"' not in page.text
    else:
        assert f'class="notice" role="status">{shown}</p>' in page.text


def test_a_deleted_account_is_logged_out_everywhere(
    browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jeff.identity_loader returns None for a user that no longer exists: anonymous at once.
    client = logged_in(browser(), BOB)
    monkeypatch.delitem(pyramid_jeff_demo.security.USERS, BOB)
    assert client.get("/users").status_int == 303
    assert "browsing anonymously" in client.get("/products").text

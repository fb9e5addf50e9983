"""Hostile input through the whole request path: Cookie headers, return paths, keys.

- Property-based fuzzing (hypothesis) of the ``Cookie`` header: never a 500, never a
  store call for a malformed value, never authenticated. 1,000 examples by default;
  ``make fuzz`` (``JEFF_FUZZ_EXAMPLES=200000``) for a nightly-style run.
- Open redirects: :func:`pyramid_jeff.safe_return_path` and the login view that uses it
  only ever send the browser to a path on this site.
- Session keys: what ``remember()`` refuses, it refuses with a clear error before any
  write, and what it accepts comes back exactly.
"""

from __future__ import annotations

import os
import re
import string
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urljoin, urlsplit

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyramid.interfaces import ISecurityPolicy
from pyramid.scripting import prepare
from pyramid.security import remember
from webob import Request

from pyramid_jeff import MemoryStore, RedisStore, SessionManager, safe_return_path
from pyramid_jeff.credentials import key_digest

from .app import make_wsgi_app
from .conftest import HTTPS, AppFactory, JeffTestApp
from .helpers import CountingStore, set_cookies

FUZZ_EXAMPLES = int(os.environ.get("JEFF_FUZZ_EXAMPLES", "1000"))
COOKIE = "__Host-jeff"  # the app runs over https with the default settings
SITE = "https://example.com"
# The documented cookie format (credentials.py, docs/security.md), written out here
# independently of the implementation's own regular expression.
WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")
MAX_COOKIE_HEADER = 262144  # documented: beyond it the header is not read at all
B64URL = string.ascii_letters + string.digits + "-_"


# --- Cookie header fuzzing ----------------------------------------------------------------


class Target:
    """The test app with a counting store and a few real, live sessions."""

    def __init__(self, store: Any) -> None:
        self.wsgi = make_wsgi_app({"jeff.store": "memory://", "jeff.login_url": "/login"})
        self.manager: SessionManager = self.wsgi.registry.getUtility(ISecurityPolicy).manager
        self.counting = CountingStore(store)
        self.manager.store = self.counting  # type: ignore[assignment]
        self.cookies = []
        for user in ("alice@example.com", "bob@example.com", "1"):
            response = self.request("/login", None, method="POST", form={"key": user})
            assert response.status_code == 303
            (header,) = response.headers.getall("Set-Cookie")
            self.cookies.append(header.split(";")[0].split("=", 1)[1])
        assert all(WELL_FORMED.fullmatch(cookie) for cookie in self.cookies)

    def request(
        self,
        path: str,
        cookie_header: str | None,
        method: str = "GET",
        form: dict[str, str] | None = None,
    ) -> Any:
        request = Request.blank(path, environ=dict(HTTPS), method=method, POST=form)
        if cookie_header is not None:
            request.environ["HTTP_COOKIE"] = cookie_header  # exactly as given, unparsed
        return request.get_response(self.wsgi)


def our_values(header: str) -> list[str]:
    """The values the header gives our cookie, by RFC 6265's splitting rules."""
    values = []
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip() == COOKIE:
            values.append(value.strip())
    return values


def may_call_store(header: str) -> bool:
    """Only a header with our cookie once, in the exact format, may reach the store."""
    if len(header) > MAX_COOKIE_HEADER:
        return False
    values = our_values(header)
    return len(values) == 1 and WELL_FORMED.fullmatch(values[0]) is not None


LATIN1 = st.characters(min_codepoint=0, max_codepoint=0xFF)
B64_PART = {n: st.text(B64URL, min_size=n, max_size=n) for n in (22, 43)}
WELL_FORMED_VALUES = st.builds(
    "{}.{}.{}".format, B64_PART[22], B64_PART[22], B64_PART[43]
)  # the right shape, but no such session
NOT_OURS = st.sampled_from(
    ["jeff", "__host-jeff", "__HOST-JEFF", "__Secure-jeff", "__Host-jeff2", "__Host-jef", ""]
)


@st.composite
def near_miss(draw: st.DrawFn, cookies: list[str]) -> str:
    """A real or well-formed value, broken in one way (wrong everywhere a byte counts)."""
    base = draw(st.one_of(st.sampled_from(cookies), WELL_FORMED_VALUES))
    where = draw(st.integers(min_value=1, max_value=len(base) - 1))  # strip() can't undo it
    how = draw(st.sampled_from(["replace", "delete", "insert", "alien", "pad", "dots"]))
    if how == "replace":  # still well-formed: one character of id/token/digest wrong
        old = base[where]
        new = draw(st.sampled_from([c for c in B64URL if c != old]))
        return base[:where] + new + base[where + 1 :]
    if how == "delete":
        return base[:where] + base[where + 1 :]
    if how == "insert":
        return base[:where] + draw(st.sampled_from(B64URL + ".")) + base[where:]
    if how == "alien":  # a character outside the alphabet, in the middle
        alien = draw(LATIN1.filter(lambda c: c not in B64URL + "."))
        return base[:where] + alien + base[where + 1 :]
    if how == "pad":
        return base + draw(st.sampled_from(["=", "==", "%3D", '"', "\\", ".x"]))
    return base.replace(".", draw(st.sampled_from(["", "..", ":", "%2E", "|"])), 1)


def cookie_headers(cookies: list[str]) -> st.SearchStrategy[str]:
    """Cookie headers a browser, a proxy or an attacker could send (none authentic)."""
    values = st.one_of(
        st.text(LATIN1, max_size=120),
        st.text(max_size=60),  # any Unicode, although a real server would send Latin-1
        st.text(B64URL + ".", max_size=100),
        WELL_FORMED_VALUES,
        near_miss(cookies),
        st.just(""),
    )
    foreign = st.builds(
        "{}={}".format,
        st.text(LATIN1.filter(lambda c: c not in ";="), max_size=12),
        st.text(LATIN1.filter(lambda c: c != ";"), max_size=30),
    ).filter(lambda part: part.partition("=")[0].strip() != COOKIE)
    ours = values.map(lambda v: f"{COOKIE}={v}")
    genuine = st.sampled_from(cookies)
    return st.one_of(
        ours,
        st.builds(
            lambda before, mine, after: "; ".join([*before, mine, *after]),
            st.lists(foreign, max_size=3),
            ours,
            st.lists(foreign, max_size=3),
        ),
        # Our cookie twice, even genuine twice: "not logged in" (we cannot tell which).
        st.builds(
            lambda a, b, sep: f"{COOKIE}={a}{sep}{COOKIE}={b}",
            st.one_of(genuine, values),
            st.one_of(genuine, values),
            st.sampled_from(["; ", ";", " ; ", ";;"]),
        ),
        # A genuine value under a name that is not ours (a cookie tossed from a sibling
        # subdomain cannot carry the __Host- prefix).
        st.builds(lambda name, value: f"{name}={value}", NOT_OURS, genuine),
        # A genuine value in a header too long to look at.
        st.builds(
            lambda value, n: f"pad={'x' * n}; {COOKIE}={value}",
            genuine,
            st.integers(MAX_COOKIE_HEADER, MAX_COOKIE_HEADER + 200),
        ),
        st.text(LATIN1, max_size=300),
        st.text(max_size=100),
    )


ENDPOINTS = ["/whoami", "/protected", "/public", "/sessions", "/static"]


def check_anonymous(target: Target, endpoint: str, header: str) -> None:
    before = target.counting.total()
    response = target.request(endpoint, header)
    calls = target.counting.total() - before
    assert response.status_code < 500, (header, response.status)
    if endpoint == "/whoami":
        assert response.status_code == 200
        assert response.json["userid"] is None, f"authenticated by {header!r}"
    elif endpoint == "/public":
        assert response.text == "anonymous", f"authenticated by {header!r}"
    elif endpoint in ("/protected", "/sessions"):
        assert response.status_code == 303, f"authenticated by {header!r}"
    else:
        assert response.status_code == 200 and calls == 0
    if may_call_store(header):
        assert calls <= 1, f"{calls} store calls for one request"
    else:
        assert calls == 0, f"a store call for a malformed cookie header {header!r}"
    for set_cookie in response.headers.getall("Set-Cookie"):
        # At most: our cookie expired, because it was our one well-formed cookie and it
        # named no live session. Never because of what other cookies or copies did.
        assert set_cookie.startswith(f"{COOKIE}=;") and "Max-Age=0" in set_cookie
        assert may_call_store(header), f"our cookie expired by {header!r}"


def fuzz(target: Target, examples: int) -> tuple[Counter[str], float]:
    ran: Counter[str] = Counter()
    started = time.monotonic()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(header=cookie_headers(target.cookies), endpoint=st.sampled_from(ENDPOINTS))
    def run(header: str, endpoint: str) -> None:
        before = target.counting.total()
        check_anonymous(target, endpoint, header)
        ran["headers"] += 1
        ran["reached the store"] += target.counting.total() > before

    run()
    return ran, time.monotonic() - started


def test_fuzzed_cookie_headers_never_crash_call_the_store_or_authenticate() -> None:
    target = Target(MemoryStore())
    ran, seconds = fuzz(target, FUZZ_EXAMPLES)
    assert ran["headers"] >= FUZZ_EXAMPLES
    print(f"\ncookie fuzz (memory): {dict(ran)}, no 500, none authenticated, {seconds:.1f} s")
    # The genuine cookies still work: nothing the fuzzing did logged anyone out.
    for cookie in target.cookies:
        response = target.request("/whoami", f"{COOKIE}={cookie}")
        assert response.json["userid"] is not None


def test_fuzzed_cookie_headers_against_redis(redis_url: str, redis_client: Any) -> None:
    """The same properties with the real store behind (fewer examples: it is slower)."""
    store = RedisStore.from_url(redis_url)
    target = Target(store)
    examples = max(500, FUZZ_EXAMPLES // 20)
    ran, seconds = fuzz(target, examples)
    print(f"\ncookie fuzz (redis): {dict(ran)}, no 500, none authenticated, {seconds:.1f} s")
    assert ran["headers"] >= examples
    assert redis_client.dbsize() == 3  # the three users' hashes, nothing else


@pytest.mark.parametrize(
    "header",
    [
        'bad="\\x; x=\x7f\x80; =; ;;; {cookie}',
        "{cookie}; $Version=1; $Path=/",
        'a="unterminated; {cookie}',
        "\u00e9=\u00e9; {cookie}",
        "{cookie};",
        " {cookie} ",
    ],
)
def test_a_genuine_cookie_among_hostile_ones_still_works(header: str) -> None:
    """The other side of the coin: junk around our cookie does not log anyone out."""
    target = Target(MemoryStore())
    cookie = f"{COOKIE}={target.cookies[0]}"
    response = target.request("/whoami", header.format(cookie=cookie))
    assert response.json["userid"] == "alice@example.com"
    assert target.counting.total() == 1 + 3 * 1  # three logins, one verification


# --- Open redirects -----------------------------------------------------------------------

OFF_SITE = [
    "//evil.com",
    "///evil.com",
    "////evil.com/path",
    "/\\evil.com",
    "\\/evil.com",
    "\\\\evil.com",
    "\\/\\/evil.com",
    "/\\/evil.com",
    "/\\\\evil.com",
    "\\evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https://evil.com",
    "http://evil.com/",
    "HTTPS://EVIL.COM",
    "//evil.com@example.com",
    "https://example.com@evil.com",
    "ftp://evil.com",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "%2F%2Fevil.com",
    "%2f%2fevil.com",
    "/%2F/evil.com",
    "/%2f%2Fevil.com",
    "%5C%5Cevil.com",
    "/%5Cevil.com",
    "/%5C/evil.com",
    "%252F%252Fevil.com",
    "/%252F/evil.com",
    "/%09/evil.com",
    "/%0a/evil.com",
    "%0d%0a//evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "/\r\n/evil.com",
    "\t//evil.com",
    " //evil.com",
    "\x00//evil.com",
    "/\x00/evil.com",
    "\x0b//evil.com",
    "/\x7f/evil.com",
    "/\x85/evil.com",
    "/path\r\nSet-Cookie: owned=1",
    "/path\r\nLocation: https://evil.com",
    "/%0d%0aSet-Cookie:%20owned=1",
    "evil.com",
    "evil.com/path",
    "./evil",
    "../../evil.com",
    "?next=//evil.com",
    "#//evil.com",
    "/" + "a" * 5000,
    "/" + "%2F" * 3000,
    "",
    " ",
    # Same host for a browser, but a proxy or framework that normalises the path (or
    # collapses dot segments) turns them into //evil.com.
    "/.//evil.com",
    "/./\\evil.com",
    "/a/..//evil.com",
    "/%2E//evil.com",
    "/%2e%2e//evil.com",
]
ON_SITE = [
    "/",
    "/protected",
    "/protected?tab=2&x=%2F",
    "/a/b/c?q=1#frag",
    "/search?q=//not-a-host",
    "/path%20with%20space",
    "/@evil.com",  # a path on this site, not a host
    "/a.b/c./.d",  # dots in names, not dot segments
    "/" + "a" * 2000,
]


def browser_location(location: str, base: str = f"{SITE}/login") -> Any:
    """Where a browser goes for ``Location: location`` (the WHATWG URL parser's quirks:
    leading/trailing C0 controls and spaces dropped, tab and newline removed anywhere,
    backslash read as slash for http(s), and two or more leading slashes start a host,
    which Python's ``urljoin`` does not know)."""
    cleaned = location.strip("".join(chr(c) for c in range(0x21)))
    cleaned = re.sub("[\t\n\r]", "", cleaned).replace("\\", "/")
    slashes = re.match("/{2,}", cleaned)
    if slashes:
        cleaned = "//" + cleaned[slashes.end() :]  # any number of slashes: a host
    return urlsplit(urljoin(base, cleaned))


def without_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, as a normalising proxy or framework applies it."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    return "/" + "/".join(output)


def stays_on_site(location: str) -> bool:
    """On this site however many times a proxy or the application decodes or normalises
    it, and safe to emit in a ``Location`` header as it is."""
    if not location.startswith("/") or len(location) > 2048:
        return False
    if not (location.isascii() and location.isprintable()) or " " in location:
        return False
    once = unquote(location)
    for candidate in (location, once, unquote(once)):
        if re.search("[\x00-\x1f\x7f-\x9f]", candidate):
            return False  # a header injection or a host hidden behind a stripped control
        cleaned = re.sub("[\t\n\r]", "", candidate).replace("\\", "/")
        path = cleaned.split("?", 1)[0].split("#", 1)[0]
        for form in (candidate, without_dot_segments(path)):
            target = browser_location(form)
            if (target.scheme, target.netloc) != ("https", "example.com"):
                return False
    return True


def test_the_oracle_tells_off_site_from_on_site() -> None:
    assert len(OFF_SITE) >= 20
    # The oracle itself, checked both ways, so that the tests built on it can fail.
    off_site_accepted = [payload for payload in OFF_SITE if stays_on_site(payload)]
    assert off_site_accepted == []
    on_site_refused = [payload for payload in ON_SITE if not stays_on_site(payload)]
    assert on_site_refused == []


@pytest.mark.parametrize("payload", OFF_SITE)
def test_safe_return_path_refuses(payload: str) -> None:
    assert safe_return_path(payload) == "/"
    assert safe_return_path(payload, "/home") == "/home"


@pytest.mark.parametrize("payload", ON_SITE)
def test_safe_return_path_keeps_paths_on_this_site(payload: str) -> None:
    assert safe_return_path(payload, "/default") == payload


def test_safe_return_path_refuses_what_is_not_a_string() -> None:
    for value in (None, b"/path", 42, ["/path"]):
        assert safe_return_path(value, "/d") == "/d"  # type: ignore[arg-type]


@settings(max_examples=3000, deadline=None, database=None)
@given(
    value=st.one_of(
        st.text(max_size=40),
        st.text(LATIN1, max_size=40),
        st.builds(
            "{}{}{}{}".format,
            st.sampled_from(
                [
                    "",
                    "/",
                    "//",
                    "\\",
                    "/\\",
                    "\\/",
                    "%2F",
                    "%2f%2F",
                    "%5C",
                    "https:",
                    "http://",
                    "javascript:",
                    " ",
                    "\t",
                    "\x00",
                    "%09",
                    "%252F",
                    "/%2F",
                    "///",
                ]
            ),
            st.sampled_from(["", "/", "\\", "%2F", "@", ":", "%0d%0a", "\r\n"]),
            st.sampled_from(["evil.com", "example.com", "a", "127.0.0.1", "[::1]", ""]),
            st.text(max_size=10),
        ),
    )
)
def test_safe_return_path_property(value: str) -> None:
    result = safe_return_path(value, "/default")
    if result == "/default":
        return
    assert stays_on_site(result), f"{value!r} -> {result!r}"
    assert result.isascii() and result.isprintable() and " " not in result
    assert safe_return_path(result, "/default") == result  # accepted paths are stable
    # Returned as given; only non-ASCII and what HTML escapes come back percent-encoded.
    assert not set(result) & set("\"'<>`")
    assert result == value or unquote(result) == value


@pytest.fixture
def memory_app() -> JeffTestApp:
    """The test app on the memory store: redirects do not depend on the store."""
    wsgi = make_wsgi_app({"jeff.store": "memory://", "jeff.login_url": "/login"})
    app = JeffTestApp(wsgi, extra_environ=dict(HTTPS))
    app.manager = wsgi.registry.getUtility(ISecurityPolicy).manager
    return app


def login_location(app: JeffTestApp, next_value: str, in_query: bool) -> str:
    app.reset()
    if in_query:
        query = urlencode({"next": next_value})
        response = app.post(f"/login?{query}", {"key": "alice@example.com"})
    else:
        response = app.post("/login", {"key": "alice@example.com", "next": next_value})
    assert response.status_int == 303
    location: str = response.headers["Location"]
    return location


@pytest.mark.parametrize("payload", OFF_SITE)
def test_login_never_redirects_off_site(memory_app: JeffTestApp, payload: str) -> None:
    for in_query in (False, True):
        location = login_location(memory_app, payload, in_query)
        target = browser_location(location)
        assert (target.scheme, target.netloc) == ("https", "example.com"), location
        assert target.path == "/public", f"{payload!r} -> {location!r}"


@pytest.mark.parametrize("payload", ON_SITE)
def test_login_returns_to_paths_on_this_site(memory_app: JeffTestApp, payload: str) -> None:
    location = login_location(memory_app, payload, in_query=False)
    assert browser_location(location) == browser_location(payload)


HOSTILE_QUERIES = [
    "next=//evil.com",
    "next=https://evil.com",
    "a=%0d%0aLocation:%20https://evil.com",
    "a=\\\\evil.com",
    "%2F%2Fevil.com",
    "x=/%2F/evil.com&y=\\/\\/evil",
    "q=" + "A" * 3000,
    "q=%C3%A9%00",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_forbidden_redirect_and_round_trip_stay_on_site(
    memory_app: JeffTestApp, query: str
) -> None:
    """Anonymous on a protected page: the redirect to the login page carries a ``next``
    that, once logged in, brings the user back to that page and never elsewhere."""
    response = memory_app.get(
        f"/protected?{query}", extra_environ={"HTTP_HOST": "evil.com"}, status=303
    )
    login = urlsplit(response.headers["Location"])
    assert login.path == "/login"
    assert login.netloc in ("", "evil.com")  # WebOb may absolutise with the Host asked for
    (next_value,) = parse_qs(login.query)["next"]
    assert next_value.startswith("/protected")
    back = login_location(memory_app, next_value, in_query=True)
    target = browser_location(back)
    assert (target.scheme, target.netloc) == ("https", "example.com"), back
    assert target.path in ("/protected", "/public")


def test_forbidden_redirect_for_odd_paths_stays_on_site(memory_app: JeffTestApp) -> None:
    for path in ("//evil.com/protected", "/protected/../..//evil.com", "/\\evil.com"):
        response = memory_app.get(path, status="*")
        assert response.status_int < 500
        location = response.headers.get("Location")
        if location is not None:
            assert browser_location(location).netloc == "example.com", location
            for next_value in parse_qs(urlsplit(location).query).get("next", []):
                back = browser_location(login_location(memory_app, next_value, in_query=True))
                assert back.netloc == "example.com"


# --- Session keys -------------------------------------------------------------------------

BAD_KEYS = [
    ("", "empty"),
    ("a" * 513, "at most 512 bytes"),
    ("\u00e9" * 257, "at most 512 bytes"),  # 514 bytes in 257 characters
    ("k" * 1_000_000, "at most 512 bytes"),
    ("\x00", "control"),
    ("alice\x00@example.com", "control"),
    ("alice@example.com\x00", "control"),
    ("line\nbreak", "control"),
    ("esc\x1b[31m", "control"),
    ("del\x7f", "control"),
    ("nel\x85", "control"),
    ("\ud800", "surrogate"),
    ("e\u0301", "NFC"),  # é, decomposed
    ("A\u030a", "NFC"),  # Å, decomposed
    ("\u212b", "NFC"),  # ANGSTROM SIGN, whose NFC form is U+00C5
    ("\u1100\u1161", "NFC"),  # Hangul jamo that compose
]


@pytest.fixture
def prepared(make_app: AppFactory) -> Iterator[tuple[JeffTestApp, Any, CountingStore]]:
    """A request as a view has it, on an app whose store counts every call."""
    app = make_app()
    counting = CountingStore(app.manager.store)
    app.manager.store = counting  # type: ignore[assignment]
    env = prepare(registry=app.app.registry)
    try:
        yield app, env["request"], counting
    finally:
        env["closer"]()


@pytest.mark.parametrize(("key", "reason"), BAD_KEYS, ids=[r for _, r in BAD_KEYS])
def test_bad_keys_get_a_clear_value_error_at_remember(
    prepared: tuple[JeffTestApp, Any, CountingStore], key: str, reason: str, store_url: str
) -> None:
    _, request, counting = prepared
    with pytest.raises(ValueError, match=reason):
        remember(request, key)
    assert counting.total() == 0, "a refused key reached the store"
    if store_url != "memory://":
        client = redis.Redis.from_url(store_url)
        assert client.dbsize() == 0, "a refused key left something in Redis"
        client.close()


@pytest.mark.parametrize("key", [b"alice", None, True, 1.5, ["a"], {"k": 1}])
def test_keys_of_the_wrong_type_are_a_type_error(
    prepared: tuple[JeffTestApp, Any, CountingStore], key: Any
) -> None:
    _, request, counting = prepared
    with pytest.raises(TypeError, match="str or an int"):
        remember(request, key)
    assert counting.total() == 0


def test_bad_keys_through_the_login_view_issue_no_cookie(memory_app: JeffTestApp) -> None:
    counting = CountingStore(memory_app.manager.store)
    memory_app.manager.store = counting  # type: ignore[assignment]
    for key, reason in BAD_KEYS:
        if "\ud800" in key:
            continue  # cannot travel in a form: UTF-8 has no surrogates
        memory_app.reset()
        with pytest.raises(ValueError, match=reason):
            memory_app.post("/login", {"key": key})
        assert not memory_app.cookies
    assert counting.total() == 0


def test_limits_are_exact(prepared: tuple[JeffTestApp, Any, CountingStore]) -> None:
    app, request, _ = prepared
    for key in ("a" * 512, "\u00e9" * 256, "\U0001f600" * 128, "x", "\u00c5", "0"):
        headers = remember(request, key)
        assert len(headers) == 1
        (session,) = app.manager.sessions(key)
        assert session.key == key
    remember(request, 42)
    assert [s.key for s in app.manager.sessions("42")] == ["42"]


@settings(max_examples=1000, deadline=None, database=None)
@given(key=st.one_of(st.text(max_size=40), st.integers(), st.text(LATIN1, max_size=600)))
def test_any_key_round_trips_or_is_refused_before_a_write(key: str | int) -> None:
    store = CountingStore(MemoryStore())
    manager = SessionManager(store)  # type: ignore[arg-type]
    try:
        session, credential = manager.create(key)
    except ValueError:
        assert store.total() == 0
        return
    text = str(key)
    assert session.key == text
    assert [s.key for s in manager.sessions(text)] == [text]
    assert manager.verify(credential) is not None
    assert credential.key_digest == key_digest(text)


def test_weird_but_valid_keys_round_trip_through_redis(redis_url: str, redis_client: Any) -> None:
    manager = SessionManager(RedisStore.from_url(redis_url))
    keys = ["{tag}", "}{", "a:b", "*", "\u00e9", "\U0001f600", "'; DROP", "\u2028", "z" * 512]
    for key in keys:
        _, credential = manager.create(key)
        assert [s.key for s in manager.sessions(key)] == [key]
        assert manager.verify(credential) is not None
    assert redis_client.dbsize() == len(keys)  # each key its own hash, nothing shared


def test_a_huge_user_agent_is_truncated(app: JeffTestApp) -> None:
    app.post(
        "/login",
        {"key": "alice@example.com"},
        headers={"User-Agent": "U" * 100_000},
        status=303,
    )
    (session,) = app.manager.sessions("alice@example.com")
    assert session.user_agent is not None and len(session.user_agent) <= 256


# --- What a hostile script or page could get hold of --------------------------------------


def test_the_default_cookie_is_out_of_reach_of_scripts_and_other_hosts(app: JeffTestApp) -> None:
    """ASVS 3.3.1, 3.3.3, 3.3.4, 3.3.5 with the default settings: ``__Host-`` prefix,
    Secure, HttpOnly, Path=/, no Domain, SameSite=Lax; a fixed, small size; and the token
    travels only in the ``Set-Cookie`` header, never in a body, a URL or a redirect."""
    response = app.login("alice@example.com", next="/whoami")
    (header,) = set_cookies(response)
    name_value, *attributes = [part.strip() for part in header.split(";")]
    name, value = name_value.split("=", 1)
    assert name == COOKIE and WELL_FORMED.fullmatch(value)
    assert len(name_value.encode()) <= 4096  # 101 bytes: far below what browsers keep
    flags = {a.split("=", 1)[0].lower(): a.partition("=")[2] for a in attributes}
    assert {"secure", "httponly"} <= set(flags)
    assert flags["path"] == "/" and "domain" not in flags
    assert flags["samesite"] == "Lax" and flags["max-age"] == "2592000"
    token = value.split(".")[2]
    assert token not in response.text and token not in response.headers["Location"]
    for page in ("/whoami", "/public", "/protected", "/sessions"):
        answer = app.get(page)
        assert token not in answer.text and not set_cookies(answer)
        assert all(token not in v for k, v in answer.headers.items() if k != "Set-Cookie")


# --- The security map stays true ----------------------------------------------------------


def test_every_test_named_in_the_security_map_exists() -> None:
    """docs/security.md proves each claim by naming a test: a renamed or deleted test
    must not leave the map pointing at nothing."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "security.md"
    references = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", docs.read_text()))
    assert len(references) >= 30
    missing = []
    for file_name, test_name in sorted(references):
        path = Path(__file__).resolve().parent / file_name
        source = path.read_text() if path.exists() else ""
        if not re.search(rf"^def {test_name}\(", source, re.MULTILINE):
            missing.append(f"{file_name}::{test_name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"

"""Open redirects: :func:`pyramid_jeff.safe_return_path` and the login view that uses it only
ever send the browser to a path on this site."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urljoin, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyramid_jeff import safe_return_path

from ..conftest import JeffTestApp
from .shapes import LATIN1, SITE

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

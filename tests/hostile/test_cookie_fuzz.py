"""Property-based fuzzing (hypothesis) of the ``Cookie`` header: never a 500, never a store call
for a malformed value, never authenticated. 1,000 examples by default; ``make fuzz``
(``JEFF_FUZZ_EXAMPLES=200000``) for a nightly-style run."""

from __future__ import annotations

import os
import string
import time
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webob import Request

from pyramid_jeff import MemoryStore, RedisStore, SessionManager
from pyramid_jeff.testing import jeff_policy

from ..app import make_wsgi_app
from ..conftest import HTTPS
from ..helpers import CountingStore
from .shapes import COOKIE, LATIN1, WELL_FORMED

FUZZ_EXAMPLES = int(os.environ.get("JEFF_FUZZ_EXAMPLES", "1000"))


MAX_COOKIE_HEADER = 262144  # documented: beyond it the header is not read at all
B64URL = string.ascii_letters + string.digits + "-_"


# --- Cookie header fuzzing ----------------------------------------------------------------


class Target:
    """The test app with a counting store and a few real, live sessions."""

    def __init__(self, store: Any) -> None:
        self.wsgi = make_wsgi_app({"jeff.store": "memory://", "jeff.login_url": "/login"})
        self.manager: SessionManager = jeff_policy(self.wsgi.registry).manager
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

"""Interleaved in-process timing, and WSGI requests made as a browser would make them.

The machine is shared and noisy, so no case is timed on its own: every round runs one
batch of each case, in a fresh random order, and a ratio is the median over rounds of the
ratio of the two cases' batch medians *in that round*. A slow spell then hits both sides.
"""

from __future__ import annotations

import io
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import count
from time import perf_counter_ns
from typing import Any
from urllib.parse import quote

from pyramid.request import Request

# A current desktop Chrome UA (about 110 characters): logins store it, so its size matters.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CLIENT_IP = "203.0.113.7"
# What a browser sends with a navigation besides the cookie (the same for every variant).
BROWSER_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br, zstd",
}
# The bare apps ignore cookies, but get a header of a typical size all the same.
DUMMY_COOKIE = "jeff=" + "x" * 80
Ratio = tuple[float, float, float]  # median, 25th and 75th percentile


@dataclass
class Case:
    name: str
    label: str
    call: Callable[[], Any]
    rounds: list[list[int]] = field(default_factory=list)  # per round, per call, in ns

    def median_us(self) -> float:
        return statistics.median(t for batch in self.rounds for t in batch) / 1000

    def round_medians(self) -> list[float]:
        return [statistics.median(batch) for batch in self.rounds]


def run_interleaved(cases: Sequence[Case], *, rounds: int, batch: int, warmup: int) -> None:
    """Fill ``case.rounds`` for every case: round-robin batches in shuffled order."""
    rng = random.Random(5)
    for case in cases:  # warm caches, connection pools, lazily compiled things
        for _ in range(warmup):
            case.call()
    order = list(cases)
    for _ in range(rounds):
        rng.shuffle(order)
        for case in order:
            call, times = case.call, [0] * batch
            for i in range(batch):
                t0 = perf_counter_ns()
                call()
                times[i] = perf_counter_ns() - t0
            case.rounds.append(times)


def quartiles(values: Sequence[float]) -> Ratio:
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[0], q[2]


def ratio(case: Case, ref: Case) -> Ratio:
    """Median and IQR over rounds of case / ref (same-round batch medians)."""
    pairs = zip(case.round_medians(), ref.round_medians(), strict=True)
    return quartiles([a / b for a, b in pairs])


def fmt_ratio(r: Ratio) -> str:
    return f"{r[0]:.2f}x ({r[1]:.2f}-{r[2]:.2f})"


# --------------------------------------------------------------------------------------------
# WSGI requests, called in-process as a server would call the app.


def environ(path: str, method: str = "GET", cookie: str | None = None) -> dict[str, Any]:
    headers = dict(BROWSER_HEADERS, **({"Cookie": cookie} if cookie else {}))
    env = Request.blank(path, method=method, headers=headers, remote_addr=CLIENT_IP).environ
    env["SERVER_NAME"] = "localhost"  # AuthTkt sets domain cookies from it; keep it simple
    return env  # type: ignore[no-any-return]


def wsgi_call(app: Any, env: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """One request of a copy of ``env``: its status and headers (the body is dropped)."""
    seen: list[Any] = ["", []]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        seen[0], seen[1] = status, headers

    env = env.copy()
    env["wsgi.input"] = io.BytesIO()
    result = app(env, start_response)
    try:
        for _ in result:
            pass
    finally:
        if hasattr(result, "close"):
            result.close()
    return seen[0], seen[1]


def caller(
    app: Any, env: dict[str, Any], vary: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[], None]:
    """A zero-argument request; any status but 200 raises (timing 403s measures nothing)."""

    def call() -> None:
        if vary is not None:
            vary(env)  # wsgi_call copies it
        status, _ = wsgi_call(app, env)
        if not status.startswith("200"):
            raise AssertionError(f"expected 200, got {status}")

    return call


def cookie_header(headers: list[tuple[str, str]]) -> str:
    """The ``Cookie`` header a browser sends after these response headers."""
    cookies = {}
    for name, value in headers:
        if name.lower() == "set-cookie" and "max-age=0" not in value.lower():
            cname, _, cvalue = value.split(";", 1)[0].partition("=")
            cookies[cname.strip()] = cvalue.strip()
    if not cookies:
        raise RuntimeError("login set no cookie")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def login(app: Any, userid: str) -> str:
    """Log in through the app's ``POST /login``; return the browser's ``Cookie`` header."""
    status, headers = wsgi_call(app, environ(f"/login?u={quote(userid)}", "POST"))
    if not status.startswith("200"):
        raise RuntimeError(f"login failed: {status}")
    return cookie_header(headers)


def logged_in(app: Any, userid: str, *, refuses_anonymous: bool = True) -> str:
    """A login's cookie, checked: the view answers 200 with it and refuses without it."""
    cookie = login(app, userid)
    if not wsgi_call(app, environ("/private", cookie=cookie))[0].startswith("200"):
        raise RuntimeError(f"{userid}: the login cookie is refused")
    anonymous = wsgi_call(app, environ("/private", cookie=DUMMY_COOKIE))[0]
    if refuses_anonymous and anonymous.startswith("200"):
        raise RuntimeError("anonymous request was let in: the view is not protected")
    return cookie


def verify_case(name: str, label: str, app: Any, cookie: str) -> Case:
    return Case(name, label, caller(app, environ("/private", cookie=cookie)))


def login_case(name: str, label: str, app: Any, users: int = 0) -> Case:
    """Each call logs a *new* user in (no cookie), or one of ``users`` in turn when set."""
    numbers, tag = count(), name.replace("-", "")

    def vary(env: dict[str, Any]) -> None:
        number = next(numbers)
        env["QUERY_STRING"] = f"u={tag}{number % users if users else number}%40bench.example"

    return Case(name, label, caller(app, environ("/login?u=x", "POST"), vary))

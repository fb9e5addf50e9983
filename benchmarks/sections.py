"""The harness's sections (requests, login, many, memory, http) and the Targets table."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .http_run import run_http
from .measure import DUMMY_COOKIE, Case, logged_in, login, login_case, verify_case
from .redis_work import Memory, memory, per_call
from .report import MEDIAN, Column, Report, Timing, ratio_column, table, timed_table
from .variants import JEFF_VARIANTS, VARIANTS

PROPS_NOTE = (
    "*x bare + 2 props* divides by bare Pyramid with two `add_request_method(reify=True)` "
    "properties, the fair baseline for a library whose contract is two request properties "
    "(`request.jeff_session`, `request.jeff`): Pyramid builds a request class per request for "
    "any such property, as every app with a `request.user` or pyramid_tm's `request.tm` "
    "already pays."
)
# A hash stays a compact listpack while every value is at most this many bytes (Redis's
# default is 64; a jeff record is about 200 bytes with a browser's User-Agent).
LISTPACK_512 = {"hash-max-listpack-value": "512"}


@dataclass
class Plan:
    requests: Timing
    login: Timing
    many: Timing
    stats_n: int
    memory_sessions: int
    http_rounds: int
    http_seconds: float


FULL = Plan(Timing(50, 120, 300), Timing(30, 40, 40), Timing(40, 120, 300), 500, 100_000, 5, 4)
QUICK = Plan(Timing(8, 50, 100), Timing(6, 20, 20), Timing(8, 50, 100), 100, 5_000, 1, 2)
HTTP_CONNECTIONS = 16
Apps = dict[str, Any]


def verify_cases(
    apps: dict[str, Any], names: list[str], label: Callable[[str], str]
) -> dict[str, Case]:
    """An authenticated ``GET /private`` per app, with a checked login's cookie."""
    cases = {}
    for name in names:
        user, anonymous_refused = f"reader-{name}@bench.example", name != "null-policy"
        cookie = DUMMY_COOKIE  # the bare apps: no policy, no login
        if not name.startswith("bare"):
            cookie = logged_in(apps[name], user, refuses_anonymous=anonymous_refused)
        cases[name] = verify_case(name, label(name), apps[name], cookie)
    return cases


def floor_of(
    cases: dict[str, Case], title: str = "x its floor (IQR)", variant: Callable[[str], str] = str
) -> Column:
    """Redis-backed variants beside the Redis floor, the others beside the dict floor
    (``variant`` names the variant a row is built from, "" for a row without a floor)."""

    def floor(name: str) -> Case | None:
        base = variant(name)
        return (
            cases.get("floor" if VARIANTS[base].uses_redis else "floor-memory") if base else None
        )

    return ratio_column(title, floor)


def redis_columns(admin: redis.Redis, n: int, what: str) -> list[Column]:
    """Commands, round trips and Redis CPU per call of the Redis variants' cases."""
    seen: dict[str, Any] = {}

    def work(name: str, case: Case, pick: Callable[[Any], str]) -> str:
        if not VARIANTS[name].uses_redis:
            return "-"
        if name not in seen:
            seen[name] = per_call(admin, case.call, n)
        if pick is trips and name == "floor-raw":
            return "1 (raw socket)"  # redis-py does not see its round trip
        return pick(seen[name])

    def trips(w: Any) -> str:
        return f"{w.round_trips:.2f}"

    return [
        Column(f"Redis commands / {what}", lambda name, c: work(name, c, lambda w: w.commands)),
        Column("round trips", lambda name, c: work(name, c, trips)),
        Column("Redis CPU µs", lambda name, c: work(name, c, lambda w: f"{w.cpu_us:.1f}")),
    ]


def requests(report: Report, plan: Plan, apps: Apps, admin: redis.Redis) -> dict[str, Case]:
    cases = verify_cases(apps, list(apps), lambda n: VARIANTS[n].label)
    bare, props = cases["bare"], cases["bare-props"]
    columns = [
        MEDIAN,
        Column("µs over bare", lambda n, c: f"+{c.median_us() - bare.median_us():.1f}"),
        ratio_column("x bare (IQR)", lambda n: bare),
        ratio_column("x bare + 2 props (IQR)", lambda n: props if n in JEFF_VARIANTS else None),
        floor_of(cases),
        *redis_columns(admin, plan.stats_n, "request"),
    ]
    title = "Authenticated request (in-process WSGI, `GET /private` with a logged-in cookie)"
    return timed_table(report, title, PROPS_NOTE, cases, plan.requests, columns)


def login_section(report: Report, plan: Plan, apps: Apps, admin: redis.Redis) -> dict[str, Case]:
    cases = {}
    for name in (n for n in apps if n not in ("floor-py", "floor-hiredis", "bare-props")):
        label = VARIANTS[name].label + (" (no remember: request only)" * (name == "bare"))
        cases[name] = login_case(f"login-{name}", label, apps[name])
    columns = [
        MEDIAN,
        ratio_column("x bare POST", lambda n: cases["bare"]),
        floor_of(cases, "x its floor's login (IQR)"),
        *redis_columns(admin, max(100, plan.stats_n // 2), "login"),
    ]
    title = "Login (`POST /login`: `remember(request, new_user)`, fresh browser, Chrome UA)"
    return timed_table(report, title, "", cases, plan.login, columns)


def many(report: Report, plan: Plan, apps: Apps) -> dict[str, Case]:
    """Verify with 1, 100 and 1,000 (the most) sessions under one key: the newest's cookie."""
    cases = {"bare": verify_case("bare", "bare", apps["bare"], DUMMY_COOKIE)}
    for name in JEFF_VARIANTS:
        for size in (1, 100, 1000):
            key = f"many{size}-{name}@bench.example"
            for _ in range(size - 1):
                login(apps[name], key)
            cookie = logged_in(apps[name], key)
            cases[f"{name}/{size}"] = verify_case(name, VARIANTS[name].label, apps[name], cookie)
    columns = [
        Column("sessions under the key", lambda n, c: f"{int(n.split('/')[1]):,}"),
        MEDIAN,
        ratio_column("x bare", lambda n: cases["bare"]),
        ratio_column("x 1 session", lambda n: cases[n.split("/")[0] + "/1"]),
    ]
    title = "Verify with many sessions under one key (the newest session's cookie)"
    return timed_table(report, title, "", cases, plan.many, columns, hide=("bare",))


def memory_section(report: Report, plan: Plan, apps: Apps, admin: redis.Redis) -> list[Memory]:
    n, jeff = plan.memory_sessions, "jeff-redis"
    runs = [(jeff, n, {}), (jeff, n, LISTPACK_512), ("floor", n, {}), ("psr", n, {})]
    runs += [(jeff, n // 10, {}), (jeff, n // 10, LISTPACK_512)]  # 10 sessions per user
    results = [memory(admin, name, apps[name], n, users, config) for name, users, config in runs]
    header = ["variant", "layout", "Redis config", "keys", "encoding"]
    header += ["MEMORY USAGE bytes / session", "used_memory bytes / session", "fill time s"]
    rows = [
        [VARIANTS[r.variant].label, r.layout, r.config_text(), f"{r.keys:,}", r.encoding(),
         f"{r.usage:.0f}", f"{r.used_memory:.0f}", f"{r.seconds:.1f}"]
        for r in results
    ]  # fmt: skip
    intro = (
        "*Redis config* is set with `CONFIG SET` on the private server for that run only, then "
        "restored; *encoding* is `OBJECT ENCODING` of the keys. Redis's default "
        "`hash-max-listpack-value` is 64 bytes, so a hash holding one jeff record (about 200 "
        "bytes with a browser's User-Agent) becomes a `hashtable`; at 512 it stays a compact "
        "`listpack` (while it also has at most `hash-max-listpack-entries`, 128 by default, "
        "fields)."
    )
    title = f"Redis memory per session ({n:,} sessions made through each app's login)"
    report.section(title, intro, table(header, rows))
    return results


def http_table(
    report: Report, plan: Plan, labels: dict[str, str], module: str, url: str, heading: str,
    intro: str, jeff: Callable[[str], bool],
) -> dict[str, Any]:  # fmt: skip
    """req/s of each app under wrk, beside bare's (and bare + 2 props' for ``jeff`` rows);
    ``heading`` has a ``{run}`` for the load's parameters."""
    rounds, seconds = plan.http_rounds, plan.http_seconds
    results = run_http(
        labels, module, url, rounds=rounds, seconds=seconds, connections=HTTP_CONNECTIONS
    )
    bare, props = results["bare"], results["bare-props"]
    med = statistics.median
    rows = [
        [res.label, f"{med(res.rps):,.0f}", f"{res.ratio_to(bare):.2f}x",
         f"{res.ratio_to(props):.2f}x" if jeff(name) else "-", f"{med(res.p50_ms):.2f}",
         f"{med(res.p99_ms):.2f}", str(res.errors)]
        for name, res in results.items()
    ]  # fmt: skip
    header = ["variant", "median req/s", "x bare req/s", "x bare + 2 props req/s", "p50 ms"]
    run = f"`wrk -t1 -c{HTTP_CONNECTIONS} -d{plan.http_seconds:g}s`, {plan.http_rounds}"
    run += " interleaved rounds"
    report.section(heading.format(run=run), intro, table([*header, "p99 ms", "errors"], rows))
    return results


def http(report: Report, plan: Plan, url: str) -> dict[str, Any]:
    names = ("bare", "bare-props", "floor", "psr", *JEFF_VARIANTS)
    intro = "A ratio is the median over rounds of the two servers' req/s in the same round."
    labels, heading = {n: VARIANTS[n].label for n in names}, "HTTP (waitress defaults, {run})"
    jeff = JEFF_VARIANTS.__contains__
    return http_table(report, plan, labels, "benchmarks.variants", url, heading, intro, jeff)

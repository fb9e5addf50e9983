"""pyramid_jeff benchmark: cost per request against the libraries users would pick instead.

    python benchmarks/run.py          # full run (about 7 minutes on 2 cores), writes RESULTS.md
    python benchmarks/run.py --quick  # smoke run (about a minute), writes nothing unless --output

Starts a private redis-server, builds one tiny Pyramid app per variant (see apps.py), and reports
medians and *ratios to a bare Pyramid request measured in the same, interleaved run*. See
benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(1, ROOT)  # `python benchmarks/run.py` puts benchmarks/ first; add the repo root

import breakdown  # noqa: E402
import inprocess  # noqa: E402
import redis  # noqa: E402
import redis_memory  # noqa: E402
import redis_stats  # noqa: E402
from apps import JEFF_VARIANTS, VARIANTS, jeff_available  # noqa: E402
from http_load import run_http  # noqa: E402
from redis_server import PrivateRedis  # noqa: E402
from timing import Case, ratio, run_interleaved  # noqa: E402
from whatif import WHATIFS, patched, variant_of  # noqa: E402

SECTIONS = ("requests", "login", "many", "memory", "http", "whatif", "breakdown")


@dataclass
class Plan:
    rounds: int
    batch: int
    login_rounds: int
    login_batch: int
    many_rounds: int
    many_sizes: tuple[int, ...]
    stats_n: int
    memory_sessions: int
    http_rounds: int
    http_seconds: float
    http_connections: int
    warmup: int


# The Redis setting a deployer can change to store one-session hashes compactly: a hash stays a
# listpack while every value is at most this many bytes (Redis's default is 64; a jeff record is
# about 200 bytes with a browser's User-Agent). Measured beside the default for jeff.
LISTPACK_512 = {"hash-max-listpack-value": "512"}
PROPS_NOTE = (
    "*x bare + 2 props* divides by bare Pyramid with two `add_request_method(reify=True)` "
    "properties, the fair baseline for a library whose contract is two request properties "
    "(`request.jeff_session`, `request.jeff`): Pyramid builds a request class per request for "
    "any such property, as every app with a `request.user` or pyramid_tm's `request.tm` "
    "already pays."
)

FULL = Plan(
    rounds=50,
    batch=120,
    login_rounds=30,
    login_batch=40,
    many_rounds=40,
    many_sizes=(1, 100, 1000),
    stats_n=500,
    memory_sessions=100_000,
    http_rounds=5,
    http_seconds=4,
    http_connections=16,
    warmup=300,
)
QUICK = Plan(
    rounds=8,
    batch=50,
    login_rounds=6,
    login_batch=20,
    many_rounds=8,
    many_sizes=(1, 100, 1000),
    stats_n=100,
    memory_sessions=5_000,
    http_rounds=1,
    http_seconds=2,
    http_connections=16,
    warmup=100,
)


def fmt_ratio(r: tuple[float, float, float]) -> str:
    return f"{r[0]:.2f}x ({r[1]:.2f}-{r[2]:.2f})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.targets: list[tuple[str, str, str, str, bool | None]] = []

    def add(self, text: str) -> None:
        print(text, flush=True)
        self.parts.append(text)

    def target(self, what: str, goal: str, value: str, ok: bool | None, props: str = "-") -> None:
        self.targets.append((what, goal, value, props, ok))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------


def build_apps(names: list[str], url: str) -> dict[str, Any]:
    return {name: VARIANTS[name].build(url) for name in names}


def floor_of(name: str, cases: dict[str, Case]) -> Case | None:
    """Redis variants are compared with the Redis floor, the others with the dict floor."""
    return cases.get("floor" if VARIANTS[name].uses_redis else "floor-memory")


def section_requests(
    report: Report, plan: Plan, apps: dict[str, Any], admin: redis.Redis
) -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, app in apps.items():
        label = VARIANTS[name].label
        if name in ("bare", "bare-props"):
            cases[name] = inprocess.verify_case(name, label, app, inprocess.DUMMY_COOKIE)
            continue
        cookie = inprocess.login(app, f"reader-{name}@bench.example")
        inprocess.check_protected(app, cookie, refuses_anonymous=name != "null-policy")
        cases[name] = inprocess.verify_case(name, label, app, cookie)
    log(f"requests: {len(cases)} cases x {plan.rounds} rounds x {plan.batch}")
    run_interleaved(list(cases.values()), rounds=plan.rounds, batch=plan.batch, warmup=plan.warmup)
    bare, props = cases["bare"], cases.get("bare-props")
    rows = []
    for name, case in cases.items():
        commands, trips, cpu = "-", "-", "-"
        floor = floor_of(name, cases)
        by_props = fmt_ratio(ratio(case, props)) if props and name in JEFF_VARIANTS else "-"
        if VARIANTS[name].uses_redis:
            work = redis_stats.per_call(admin, case.call, plan.stats_n)
            commands = redis_stats.format_commands(work.commands)
            trips = "1 (raw socket)" if name == "floor-raw" else f"{work.round_trips:.2f}"
            cpu = f"{work.cpu_us:.1f}"
        rows.append(
            [
                case.label,
                f"{case.median_us():.1f}",
                f"+{case.median_us() - bare.median_us():.1f}",
                fmt_ratio(ratio(case, bare)),
                by_props,
                fmt_ratio(ratio(case, floor)) if floor else "-",
                commands,
                trips,
                cpu,
            ]
        )
    report.add(
        "\n## Authenticated request (in-process WSGI, `GET /private` with a logged-in cookie)\n\n"
        + PROPS_NOTE
        + "\n"
    )
    report.add(
        table(
            [
                "variant",
                "median µs",
                "µs over bare",
                "x bare (IQR)",
                "x bare + 2 props (IQR)",
                "x its floor (IQR)",
                "Redis commands / request",
                "round trips",
                "Redis CPU µs",
            ],
            rows,
        )
    )
    return cases


def section_login(
    report: Report, plan: Plan, apps: dict[str, Any], admin: redis.Redis
) -> dict[str, Case]:
    cases = {
        name: inprocess.login_case(f"login-{name}", VARIANTS[name].label, app)
        for name, app in apps.items()
        if name not in ("floor-py", "floor-hiredis", "bare-props")
    }
    log(f"login: {len(cases)} cases x {plan.login_rounds} rounds x {plan.login_batch}")
    run_interleaved(
        list(cases.values()),
        rounds=plan.login_rounds,
        batch=plan.login_batch,
        warmup=plan.login_batch,
    )
    bare = cases["bare"]
    rows = []
    for name, case in cases.items():
        commands, trips, cpu = "-", "-", "-"
        floor = floor_of(name, cases)
        if VARIANTS[name].uses_redis:
            work = redis_stats.per_call(admin, case.call, max(100, plan.stats_n // 2))
            commands = redis_stats.format_commands(work.commands)
            trips = "1 (raw socket)" if name == "floor-raw" else f"{work.round_trips:.2f}"
            cpu = f"{work.cpu_us:.1f}"
        rows.append(
            [
                case.label + (" (no remember: request only)" if name == "bare" else ""),
                f"{case.median_us():.1f}",
                fmt_ratio(ratio(case, bare)),
                fmt_ratio(ratio(case, floor)) if floor else "-",
                commands,
                trips,
                cpu,
            ]
        )
    report.add(
        "\n## Login (`POST /login`: `remember(request, new_user)`, fresh browser, Chrome UA)\n"
    )
    report.add(
        table(
            [
                "variant",
                "median µs",
                "x bare POST",
                "x its floor's login (IQR)",
                "Redis commands / login",
                "round trips",
                "Redis CPU µs",
            ],
            rows,
        )
    )
    return cases


def section_many(report: Report, plan: Plan, apps: dict[str, Any]) -> dict[str, dict[int, Case]]:
    """Verify cost with 1, 100, 1,000 (the most) sessions under one key (jeff variants)."""
    out: dict[str, dict[int, Case]] = {}
    cases: list[Case] = [
        inprocess.verify_case("bare", "bare", apps["bare"], inprocess.DUMMY_COOKIE)
    ]
    for name in JEFF_VARIANTS:
        if name not in apps:
            continue
        app = apps[name]
        out[name] = {}
        for size in plan.many_sizes:
            key = f"many{size}-{name}@bench.example"
            t0 = time.perf_counter()
            for _ in range(size - 1):
                inprocess.login(app, key)
            cookie = inprocess.login(app, key)  # the newest of `size` sessions under one key
            inprocess.check_protected(app, cookie)
            log(f"many: {name} {size} sessions under one key in {time.perf_counter() - t0:.1f}s")
            case = inprocess.verify_case(
                f"{name}-{size}", f"{VARIANTS[name].label}, {size:,}", app, cookie
            )
            out[name][size] = case
            cases.append(case)
    if not out:
        return out
    log(f"many: {len(cases)} cases x {plan.many_rounds} rounds x {plan.batch}")
    run_interleaved(cases, rounds=plan.many_rounds, batch=plan.batch, warmup=plan.warmup)
    rows = []
    for name, by_size in out.items():
        one = by_size[plan.many_sizes[0]]
        for size, case in by_size.items():
            rows.append(
                [
                    VARIANTS[name].label,
                    f"{size:,}",
                    f"{case.median_us():.1f}",
                    fmt_ratio(ratio(case, cases[0])),
                    fmt_ratio(ratio(case, one)),
                ]
            )
    report.add("\n## Verify with many sessions under one key (the newest session's cookie)\n")
    report.add(
        table(["variant", "sessions under the key", "median µs", "x bare", "x 1 session"], rows)
    )
    return out


def section_memory(
    report: Report, plan: Plan, apps: dict[str, Any], admin: redis.Redis
) -> list[redis_memory.MemoryResult]:
    n = plan.memory_sessions
    runs: list[tuple[str, int, dict[str, str]]] = []
    if "jeff-redis" in apps:
        runs.append(("jeff-redis", n, {}))
        runs.append(("jeff-redis", n, LISTPACK_512))
    for name in ("floor", "psr"):
        if name in apps:
            runs.append((name, n, {}))
    if "jeff-redis" in apps:
        runs.append(("jeff-redis", n // 10, {}))  # 10 sessions per user
        runs.append(("jeff-redis", n // 10, LISTPACK_512))
    results = []
    for name, users, config in runs:
        log(f"memory: {name}, {n:,} sessions over {users:,} users, config {config or 'default'}")
        results.append(redis_memory.measure(admin, name, apps[name], n, users, config))
    rows = [
        [
            VARIANTS[r.variant].label,
            r.layout,
            r.config_text(),
            f"{r.keys:,}",
            r.encoding(),
            f"{r.usage_per_session:.0f}",
            f"{r.used_memory_per_session:.0f}",
            f"{r.seconds:.1f}",
        ]
        for r in results
    ]
    report.add(
        f"\n## Redis memory per session ({n:,} sessions made through each app's login)\n\n"
        "*Redis config* is set with `CONFIG SET` on the private server for that run only, then "
        "restored; *encoding* is `OBJECT ENCODING` of the keys. Redis's default "
        "`hash-max-listpack-value` is 64 bytes, so a hash holding one jeff record (about 200 "
        "bytes with a browser's User-Agent) becomes a `hashtable`; at 512 it stays a compact "
        "`listpack` (while it also has at most `hash-max-listpack-entries`, 128 by default, "
        "fields).\n"
    )
    report.add(
        table(
            [
                "variant",
                "layout",
                "Redis config",
                "keys",
                "encoding",
                "MEMORY USAGE bytes / session",
                "used_memory bytes / session",
                "fill time s",
            ],
            rows,
        )
    )
    return results


def section_http(report: Report, plan: Plan, names: list[str], url: str) -> dict[str, Any]:
    log(f"http: {len(names)} servers x {plan.http_rounds} rounds x {plan.http_seconds}s")
    results = run_http(
        names,
        url,
        rounds=plan.http_rounds,
        seconds=plan.http_seconds,
        connections=plan.http_connections,
    )
    bare, props = results["bare"], results.get("bare-props")
    rows = [
        [
            res.label,
            f"{statistics.median(res.rps):,.0f}",
            f"{res.ratio_to(bare):.2f}x",
            f"{res.ratio_to(props):.2f}x" if props and variant_of(name) in JEFF_VARIANTS else "-",
            f"{statistics.median(res.p50_ms):.2f}",
            f"{statistics.median(res.p99_ms):.2f}",
            str(res.errors),
        ]
        for name, res in results.items()
    ]
    report.add(
        f"\n## HTTP (waitress defaults, `wrk -t1 -c{plan.http_connections} "
        f"-d{plan.http_seconds:g}s`, {plan.http_rounds} interleaved rounds)\n\n"
        "What-if rows as in the what-if section below. A ratio is the median over rounds of "
        "the two servers' req/s in the same round.\n"
    )
    report.add(
        table(
            [
                "variant",
                "median req/s",
                "x bare req/s",
                "x bare + 2 props req/s",
                "p50 ms",
                "p99 ms",
                "errors",
            ],
            rows,
        )
    )
    return results


def section_whatif(report: Report, plan: Plan, url: str) -> dict[str, Case]:
    """The unpatched apps beside patched ones (see whatif.py), interleaved."""
    base = ["bare", "bare-props", "floor-memory", "floor", "floor-conn", *JEFF_VARIANTS]
    specs = [(n, VARIANTS[n].label, n, ()) for n in base]
    specs += [
        (name, label, variant, patches) for name, (label, variant, patches) in WHATIFS.items()
    ]
    cases: dict[str, Case] = {}
    for name, label, variant, patches in specs:
        app = patched(VARIANTS[variant].build, *patches)(url)
        if variant in ("bare", "bare-props"):
            cases[name] = inprocess.verify_case(name, label, app, inprocess.DUMMY_COOKIE)
            continue
        cookie = inprocess.login(app, f"whatif-{name}@bench.example")
        inprocess.check_protected(app, cookie)
        cases[name] = inprocess.verify_case(name, label, app, cookie)
    log(f"whatif: {len(cases)} cases x {plan.rounds} rounds x {plan.batch}")
    run_interleaved(list(cases.values()), rounds=plan.rounds, batch=plan.batch, warmup=plan.warmup)
    rows = []
    for name, case in cases.items():
        variant = variant_of(name)
        floor = None
        if variant not in ("bare", "bare-props"):
            floor = cases["floor" if VARIANTS[variant].uses_redis else "floor-memory"]
        rows.append(
            [
                case.label,
                f"{case.median_us():.1f}",
                fmt_ratio(ratio(case, cases["bare"])),
                fmt_ratio(ratio(case, cases["bare-props"])),
                fmt_ratio(ratio(case, floor)) if floor else "-",
            ]
        )

    def saved(slow: str, fast: str) -> str:
        a, b = cases[slow], cases[fast]
        per_round = [x - y for x, y in zip(a.round_medians(), b.round_medians(), strict=True)]
        return f"{statistics.median(per_round) / 1000:.1f} µs"

    report.add(
        "\n## What-if: the apps patched in the benchmark\n\n"
        "Not the package: `benchmarks/whatif.py` patches built apps. *request class* is a "
        "measurement, not a proposal: pyramid_jeff keeps `add_request_method(reify=True)` for "
        "`request.jeff_session`/`request.jeff`, for which Pyramid builds a request class on "
        "every request; the patch moves those properties onto one subclass made at start-up, "
        "which prices that class creation. In this run it was "
        f"{saved('bare-props', 'bare-props+rc')} per request for bare + 2 reified properties, "
        f"{saved('jeff-memory', 'jeff-memory+rc')} for jeff on memory and "
        f"{saved('jeff-redis', 'jeff-redis+rc')} for jeff on Redis (median of same-round "
        "differences). *per-thread connection*: `RedisStore._command` on a connection each "
        "thread keeps, without the pool's checkout and release per command.\n"
    )
    report.add(
        table(
            [
                "variant",
                "median µs",
                "x bare (IQR)",
                "x bare + 2 props (IQR)",
                "x its floor (IQR)",
            ],
            rows,
        )
    )
    return cases


def section_breakdown(report: Report, url: str, quick: bool) -> None:
    log("breakdown: pieces of a jeff request")
    text = breakdown.run(url, rounds=8 if quick else 30, batch=50 if quick else 100)
    report.add(
        "\n## Where jeff's time goes: its pieces timed one by one (interleaved medians)\n\n"
        "See `benchmarks/breakdown.py`; a Redis line includes one loopback round trip.\n"
    )
    report.add(text)


# --------------------------------------------------------------------------------------------


def environment(server: PrivateRedis, admin: redis.Redis) -> str:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    from redis.utils import HIREDIS_AVAILABLE

    try:
        commit = (
            subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
            ).stdout.strip()
            or "uncommitted"
        )
    except OSError:
        commit = "?"
    info = admin.info("server")
    return (
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; repo commit {commit}"
        f" (plus uncommitted changes, if any)\n"
        f"- machine: {os.cpu_count()} CPUs, load average at start "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine: only same-run ratios "
        f"mean anything)\n"
        f"- Python {platform.python_version()}, pyramid {version('pyramid')}, WebOb "
        f"{version('WebOb')}, redis-py {version('redis')} (hiredis {version('hiredis')}, parser "
        f"{'hiredis' if HIREDIS_AVAILABLE else 'pure Python'} by default), msgpack "
        f"{version('msgpack')}, pyramid_session_redis {version('pyramid_session_redis')}, "
        f"waitress {version('waitress')}\n"
        f"- redis-server {info['redis_version']} (private, port {server.port}, "
        f'`--save "" --appendonly no`)'
    )


def evaluate(report: Report, results: dict[str, Any]) -> None:
    """The issue's targets: each verdict is against the goal as the issue states it."""
    req = results.get("requests") or {}
    props = req.get("bare-props")

    def vs_props(case: Case, goal: float) -> str:
        if props is None:
            return "-"
        r = ratio(case, props)[0]
        return f"{r:.2f}x ({'met' if r <= goal else 'missed'})"

    if "jeff-memory" in req:
        r = ratio(req["jeff-memory"], req["bare"])[0]
        report.target(
            "memory store: authenticated request",
            "≤ 1.5x bare",
            f"{r:.2f}x",
            r <= 1.5,
            vs_props(req["jeff-memory"], 1.5),
        )
    if "jeff-redis" in req:
        r = ratio(req["jeff-redis"], req["floor"])[0]
        report.target(
            "Redis store: authenticated request",
            "≤ 1.05x floor (1 redis-py GET)",
            f"{r:.2f}x",
            r <= 1.05,
        )
        if "floor-conn" in req:
            r = ratio(req["jeff-redis"], req["floor-conn"])[0]
            report.target(
                "(same, against the floor on jeff's own command path)",
                "≤ 1.05x",
                f"{r:.2f}x",
                r <= 1.05,
            )
        r = ratio(req["jeff-redis"], req["psr"])[0]
        report.target("Redis store vs pyramid_session_redis", "≤ 0.5x", f"{r:.2f}x", r <= 0.5)
    login = results.get("login") or {}
    if "jeff-redis" in login:
        r = ratio(login["jeff-redis"], login["floor"])[0]
        trips = results.get("login_trips", float("nan"))
        report.target(
            "login (Redis)",
            "≤ 1.5x one-SET floor, 1 round trip",
            f"{r:.2f}x, {trips:.2f} round trips",
            r <= 1.5 and trips <= 1.0,
        )
        if "floor-conn" in login:
            r = ratio(login["jeff-redis"], login["floor-conn"])[0]
            report.target(
                "(same, against the one-SET floor on jeff's own command path)",
                "≤ 1.5x",
                f"{r:.2f}x",
                r <= 1.5,
            )
    http = results.get("http") or {}
    hprops = http.get("bare-props")
    for name in ("jeff-redis", "jeff-memory"):
        if name in http:
            r = http[name].ratio_to(http["bare"])
            by_props = "-"
            if hprops is not None:
                rp = http[name].ratio_to(hprops)
                by_props = f"{rp:.2f}x ({'met' if rp >= 0.65 else 'missed'})"
            report.target(
                f"HTTP throughput, {VARIANTS[name].label}",
                "≥ 0.65x bare",
                f"{r:.2f}x",
                r >= 0.65,
                by_props,
            )
    for name, by_size in (results.get("many") or {}).items():
        sizes = sorted(by_size)
        r = ratio(by_size[sizes[-1]], by_size[sizes[0]])[0]
        report.target(
            f"verify, {sizes[-1]:,} vs {sizes[0]} session(s), {VARIANTS[name].label}",
            "≤ 1.1x",
            f"{r:.2f}x",
            r <= 1.1,
        )
    for res in results.get("memory") or []:
        if res.variant == "jeff-redis":
            config = "" if not res.config else f", Redis {res.config_text()}"
            report.target(
                f"Redis memory per session, {res.layout}{config}",
                "≤ 300 bytes",
                f"{res.usage_per_session:.0f} B ({res.encoding()}; used_memory "
                f"{res.used_memory_per_session:.0f} B)",
                res.usage_per_session <= 300,
            )
    if report.targets:
        rows = [[w, g, v, p, "met" if ok else "**missed**"] for w, g, v, p, ok in report.targets]
        report.add(
            "\n## Targets\n\n"
            "Verdicts are against each goal as stated (ratios to bare Pyramid); the *vs bare + 2 "
            "reified props* column divides by bare Pyramid with the two reified request "
            "properties that jeff's contract (`request.jeff_session`, `request.jeff`) requires, "
            "since Pyramid then builds a request class per request, a cost any app with one "
            "such property already pays. Rows in parentheses are for information.\n"
        )
        report.add(table(["target", "goal", "this run", "vs bare + 2 reified props", ""], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections among {','.join(SECTIONS)}",
    )
    parser.add_argument("--no-jeff", action="store_true", help="peers only (no pyramid_jeff)")
    parser.add_argument(
        "--output",
        help="markdown file to write (default: benchmarks/RESULTS.md "
        "for a full run, nothing for --quick)",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    output = args.output or (None if args.quick else os.path.join(HERE, "RESULTS.md"))

    names = [n for n in VARIANTS if n not in JEFF_VARIANTS]
    with_jeff = not args.no_jeff and jeff_available()
    if with_jeff:
        names += list(JEFF_VARIANTS)
    elif not args.no_jeff:
        log("pyramid_jeff is not importable: running the peers only")

    started = time.perf_counter()
    report = Report()
    results: dict[str, Any] = {}
    with PrivateRedis() as server:
        admin = redis.Redis.from_url(server.url)
        command = "python benchmarks/run.py" + "".join(
            f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
        )
        report.add("# pyramid_jeff benchmark results\n")
        report.add(f"Made by `{command}` ({'quick' if args.quick else 'full'} plan).\n")
        report.add(environment(server, admin))
        apps = build_apps(names, server.url)
        if "requests" in sections:
            results["requests"] = section_requests(report, plan, apps, admin)
        if "login" in sections:
            results["login"] = section_login(report, plan, apps, admin)
            if "jeff-redis" in apps:
                results["login_trips"] = redis_stats.per_call(
                    admin, results["login"]["jeff-redis"].call, 50
                ).round_trips
        if "many" in sections and with_jeff:
            results["many"] = section_many(report, plan, apps)
        if "memory" in sections:
            results["memory"] = section_memory(report, plan, apps, admin)
        if "http" in sections:
            http_names = [
                n for n in ("bare", "bare-props", "floor", "psr", *JEFF_VARIANTS) if n in names
            ]
            if with_jeff:  # what Pyramid's request class and the pool checkout cost under load
                http_names += ["jeff-memory+rc", "jeff-redis+rc", "jeff-redis+thread"]
            results["http"] = section_http(report, plan, http_names, server.url)
        if "whatif" in sections and with_jeff:
            results["whatif"] = section_whatif(report, plan, server.url)
        if "breakdown" in sections and with_jeff:
            section_breakdown(report, server.url, args.quick)
        evaluate(report, results)
    report.add(f"\nTotal run time: {time.perf_counter() - started:.0f} s.\n")
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write("\n".join(report.parts).rstrip() + "\n")
        log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

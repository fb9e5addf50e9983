"""pyramid_jeff benchmark: cost per request against the libraries users would pick instead.

    python -m benchmarks           # full run, writes its sections of benchmarks/RESULTS.md
    python -m benchmarks --quick   # smoke run: prints only (or --output FILE)

Starts a private redis-server, builds one tiny Pyramid app per variant
(benchmarks/variants.py) and reports medians and ratios to bare Pyramid measured in the same
interleaved run. See benchmarks/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

import redis

from . import sections
from .measure import ratio
from .redis_work import per_call, private_redis
from .report import RESULTS, Report, provenance, table
from .variants import VARIANTS

SECTIONS = ("requests", "login", "many", "memory", "http")


def targets(results: dict[str, Any], login_trips: float) -> list[list[str]]:
    """The goals, each judged as stated (ratios to bare Pyramid), then against bare + 2 props."""
    rows: list[list[str]] = []

    def goal(what: str, text: str, value: str, ok: bool, props: str = "-") -> None:
        rows.append([what, text, value, props, "met" if ok else "**missed**"])

    def judged(r: float, ok: bool) -> str:
        return f"{r:.2f}x ({'met' if ok else 'missed'})"

    req, login, http = (results.get(k, {}) for k in ("requests", "login", "http"))
    if req:
        r, p = (ratio(req["jeff-memory"], req[ref])[0] for ref in ("bare", "bare-props"))
        goal(
            "memory store: authenticated request",
            "≤ 1.5x bare",
            f"{r:.2f}x",
            r <= 1.5,
            judged(p, p <= 1.5),
        )
        for ref, what, text in [
            ("floor", "Redis store: authenticated request", "≤ 1.05x floor (1 redis-py GET)"),
            ("floor-conn", "(same, against the floor on jeff's own command path)", "≤ 1.05x"),
        ]:
            r = ratio(req["jeff-redis"], req[ref])[0]
            goal(what, text, f"{r:.2f}x", r <= 1.05)
        r = ratio(req["jeff-redis"], req["psr"])[0]
        goal("Redis store vs pyramid_session_redis", "≤ 0.5x", f"{r:.2f}x", r <= 0.5)
    if login:
        r = ratio(login["jeff-redis"], login["floor"])[0]
        value = f"{r:.2f}x, {login_trips:.2f} round trips"
        goal(
            "login (Redis)",
            "≤ 1.5x one-SET floor, 1 round trip",
            value,
            r <= 1.5 and login_trips <= 1,
        )
        r = ratio(login["jeff-redis"], login["floor-conn"])[0]
        goal(
            "(same, against the one-SET floor on jeff's own command path)",
            "≤ 1.5x",
            f"{r:.2f}x",
            r <= 1.5,
        )
    for name in ("jeff-redis", "jeff-memory") if http else ():
        r, p = (http[name].ratio_to(http[ref]) for ref in ("bare", "bare-props"))
        what = f"HTTP throughput, {VARIANTS[name].label}"
        goal(what, "≥ 0.65x bare", f"{r:.2f}x", r >= 0.65, judged(p, p >= 0.65))
    for name in ("jeff-memory", "jeff-redis") if "many" in results else ():
        r = ratio(results["many"][f"{name}/1000"], results["many"][f"{name}/1"])[0]
        goal(
            f"verify, 1,000 vs 1 session(s), {VARIANTS[name].label}",
            "≤ 1.1x",
            f"{r:.2f}x",
            r <= 1.1,
        )
    for m in (m for m in results.get("memory", []) if m.variant == "jeff-redis"):
        config = f", Redis {m.config_text()}" if m.config else ""
        value = f"{m.usage:.0f} B ({m.encoding()}; used_memory {m.used_memory:.0f} B)"
        goal(f"Redis memory per session, {m.layout}{config}", "≤ 300 bytes", value, m.usage <= 300)
    return rows


TARGETS_NOTE = (
    "Verdicts are against each goal as stated (ratios to bare Pyramid); the *vs bare + 2 "
    "reified props* column divides by bare Pyramid with the two reified request properties "
    "that jeff's contract (`request.jeff_session`, `request.jeff`) requires, since Pyramid "
    "then builds a request class per request, a cost any app with one such property already "
    "pays. Rows in parentheses are for information."
)


def run(report: Report, plan: sections.Plan, only: list[str], url: str) -> None:
    admin = redis.Redis.from_url(url)
    apps = {name: variant.build(url) for name, variant in VARIANTS.items()}
    results: dict[str, Any] = {}
    trips = float("nan")
    if "requests" in only:
        results["requests"] = sections.requests(report, plan, apps, admin)
    if "login" in only:
        results["login"] = sections.login_section(report, plan, apps, admin)
        trips = per_call(admin, results["login"]["jeff-redis"].call, 50).round_trips
    if "many" in only:
        results["many"] = sections.many(report, plan, apps)
    if "memory" in only:
        results["memory"] = sections.memory_section(report, plan, apps, admin)
    if "http" in only:
        results["http"] = sections.http(report, plan, url)
    if rows := targets(results, trips):
        header = ["target", "goal", "this run", "vs bare + 2 reified props", ""]
        report.section("Targets", TARGETS_NOTE, table(header, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    parser.add_argument("--output", help="markdown file (default: RESULTS.md, none for --quick)")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(only) - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    started, report = time.perf_counter(), Report()
    with private_redis() as server:
        info = server.client().info("server")
        report.add("# pyramid_jeff benchmark results\n")
        report.add(provenance(command, f" ({'quick' if args.quick else 'full'} plan)"))
        flags = '`--save "" --appendonly no`'
        report.add(
            f"- redis-server {info['redis_version']} (private, port {server.port}, {flags})"
        )
        run(report, sections.QUICK if args.quick else sections.FULL, only, server.url)
    report.add(f"\nTotal run time: {time.perf_counter() - started:.0f} s.\n")
    output = args.output or (None if args.quick else RESULTS)
    if output:
        report.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

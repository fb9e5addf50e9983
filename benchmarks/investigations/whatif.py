"""What-ifs: pyramid_jeff apps changed *in the benchmark only*, to price a cost.

Measured beside the unpatched apps and the floors, in the same interleaved rounds, and
under HTTP load. Nothing here is a design:

* ``request class`` is a measurement, not a proposal: for any ``add_request_method(
  reify=True)`` property (pyramid_jeff's ``request.jeff_session`` and ``request.jeff``)
  Pyramid builds a new request class on every request; the patch moves the properties
  onto one request subclass made at start-up, which prices that class creation (on
  bare + 2 reified properties too).
* ``per-thread connection``: jeff's ``RedisStore`` over a pool that gives each thread one
  connection for good, which prices the pool's checkout and release per command.
"""

from __future__ import annotations

import argparse
import statistics
import threading
from typing import Any

import redis
from pyramid.interfaces import IRequestExtensions, IRequestFactory
from pyramid.request import Request

from pyramid_jeff import RedisStore

from .. import variants
from ..report import MEDIAN, Report, ratio_column, timed_table
from ..sections import FULL, QUICK, floor_of, http_table, verify_cases
from ..variants import JEFF_VARIANTS, REDIS_TIMEOUT, VARIANTS, jeff_app
from . import main

MODULE = "benchmarks.investigations.whatif"  # its build() serves the HTTP run's apps


def request_class(app: Any) -> Any:
    """Move the app's reified request properties onto one subclass built now."""
    registry = app.registry
    ext = registry.queryUtility(IRequestExtensions)
    base = registry.queryUtility(IRequestFactory, default=Request)
    cls = type(base.__name__, (base,), dict(ext.descriptors))
    registry.registerUtility(cls, IRequestFactory)
    app.request_factory = cls  # the Router read both at start-up
    app.request_extensions = ext if ext.methods else None
    ext.descriptors = {}
    return app


class ThreadPool(redis.BlockingConnectionPool):
    """Each thread checks out one connection, once, and keeps it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.local = threading.local()

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.local, "connection", None) is None:
            self.local.connection = super().get_connection()
        return self.local.connection

    def release(self, connection: Any) -> None:
        pass


def thread_conn_app(url: str) -> Any:
    def store(settings: dict[str, Any]) -> RedisStore:
        pool = ThreadPool.from_url(url, timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
        return RedisStore(redis.Redis(connection_pool=pool))

    return jeff_app(store)


WHATIFS = {  # name -> (label, build)
    "bare-props+rc": ("bare + 2 reified request properties + request class",
                      lambda url: request_class(variants.build("bare-props", url))),
    "jeff-memory+rc": ("pyramid_jeff (memory) + request class",
                       lambda url: request_class(variants.build("jeff-memory", url))),
    "jeff-redis+rc": ("pyramid_jeff (Redis) + request class",
                      lambda url: request_class(variants.build("jeff-redis", url))),
    "jeff-redis+thread": ("pyramid_jeff (Redis) + per-thread connection", thread_conn_app),
    "jeff-redis+rc+thread": ("pyramid_jeff (Redis) + request class + per-thread connection",
                             lambda url: request_class(thread_conn_app(url))),
}  # fmt: skip


def build(name: str, url: str) -> Any:
    return WHATIFS[name][1](url) if name in WHATIFS else variants.build(name, url)


def label(name: str) -> str:
    return WHATIFS[name][0] if name in WHATIFS else VARIANTS[name].label


def run(report: Report, args: argparse.Namespace, url: str) -> None:
    names = ["bare", "bare-props", "floor-memory", "floor", "floor-conn", *JEFF_VARIANTS]
    apps = {name: build(name, url) for name in [*names, *WHATIFS]}
    cases = verify_cases(apps, list(apps), label)
    plan = QUICK if args.quick else FULL

    def saved(slow: str) -> str:
        pairs = zip(cases[slow].round_medians(), cases[slow + "+rc"].round_medians(), strict=True)
        return f"{statistics.median(a - b for a, b in pairs) / 1000:.1f} µs"

    def variant(name: str) -> str:
        return "" if name.startswith("bare") else name.split("+")[0]

    columns = [
        MEDIAN,
        ratio_column("x bare (IQR)", lambda n: cases["bare"]),
        ratio_column("x bare + 2 props (IQR)", lambda n: cases["bare-props"]),
        floor_of(cases, variant=variant),
    ]
    title = "What-if: the apps patched in the benchmark"
    timed_table(report, title, args.made_by, cases, plan.requests, columns)
    report.add(
        f"\nThe request class cost {saved('bare-props')} per request for bare + 2 reified "
        f"properties, {saved('jeff-memory')} for jeff on memory and {saved('jeff-redis')} for "
        "jeff on Redis (median of same-round differences)."
    )
    names = ["bare", "bare-props", "floor", *JEFF_VARIANTS, *WHATIFS]
    labels = {
        name: label(name) for name in names if "rc+thread" not in name and "props+" not in name
    }
    heading = "What-if under HTTP (waitress defaults, {run})"
    http_table(report, plan, labels, MODULE, url, heading, "", lambda name: "jeff" in name)


if __name__ == "__main__":
    main(MODULE, __doc__, run)

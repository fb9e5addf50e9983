"""What ``jeff.max_sessions`` costs on Redis: a login at the cap, ``revoke_all`` of a full
key, and how long another client waits meanwhile.

At the cap a login runs one Lua script that reads, decodes and sorts every session of
the key (prune the dead, evict the oldest); ``revoke_all`` reads and deletes them all.
Redis runs scripts one at a time, so every other client waits for them. This measures,
for ``max_sessions`` = 32 and 1000 (the setting's range) and, for reference, 10,000 and
100,000 (the store called directly with that cap):

- a login at the cap (one eviction), median;
- ``revoke_all`` of a full key, median;
- another client's ``PING`` round trip while one thread logs in at the cap in a loop
  (median and worst);

and, in the same run, a plain ``HSET`` and an idle ``PING`` as baselines. A full key is
written once through ``RedisStore.create`` and copied with ``DUMP``/``RESTORE`` for each
repetition. ``--quick`` measures the setting's range only (32 and 1000).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from pyramid_jeff import Credential, RedisStore, Session

from ..report import Report, table
from . import main

KEY = "bench@example.com"
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
DAY_MS = 86_400_000


def new_session(now_ms: int) -> Session:
    credential = Credential.mint(KEY)
    return Session(
        key=KEY, id=credential.session_id, created_ms=now_ms, last_seen_ms=now_ms,
        expires_ms=now_ms + 30 * DAY_MS, ip="192.0.2.1", user_agent=UA,
        token_digest=credential.token_digest(),
    )  # fmt: skip


def login_at_cap(store: RedisStore, digest: str, cap: int, now_ms: int) -> Any:
    session = new_session(now_ms)
    return store.create(digest, session, max_sessions=cap, now_ms=now_ms, idle_timeout_ms=0)


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def ping_during_logins(
    url: str, store: RedisStore, digest: str, cap: int, seconds: float
) -> list[float]:
    """Another client's PING round trips while one thread logs in at the cap in a loop."""
    stop, now_ms = threading.Event(), time.time_ns() // 1_000_000

    def attacker() -> None:
        while not stop.is_set():
            login_at_cap(store, digest, cap, now_ms)

    other = redis.Redis.from_url(url, socket_timeout=60, protocol=2)
    other.ping()
    thread = threading.Thread(target=attacker)
    thread.start()
    latencies, ends = [], time.monotonic() + seconds
    while time.monotonic() < ends:
        latencies.append(timed(other.ping))
        time.sleep(0.002)
    stop.set()
    thread.join()
    other.close()
    return latencies


def measure(
    url: str, client: redis.Redis, store: RedisStore, cap: int, quick: bool
) -> list[float]:
    """(login at the cap, revoke_all of a full key, PING median, PING worst), in seconds."""
    now_ms = time.time_ns() // 1_000_000
    digest = Credential.mint(KEY).key_digest
    hash_key = store.hash_key(digest)
    for i in range(cap):
        login_at_cap(store, digest, cap, now_ms - cap + i)
    full = client.dump(hash_key)

    def refill() -> None:
        client.restore(hash_key, 31 * DAY_MS, full, replace=True)

    logins = 5 if cap >= 100_000 else 15 if cap >= 10_000 else 50
    login = statistics.median(
        timed(lambda: login_at_cap(store, digest, cap, now_ms))
        for _ in range(max(3, logins // 5) if quick else logins)
    )
    pings = ping_during_logins(url, store, digest, cap, 1.5 if quick else 3.0)
    revokes = []
    for _ in range(3 if cap >= 10_000 else 10):
        refill()
        revokes.append(
            timed(
                lambda: store.revoke_all(
                    digest, keep=None, now_ms=now_ms, idle_timeout_ms=0, key=KEY
                )
            )
        )
    client.delete(hash_key)
    return [login, statistics.median(revokes), statistics.median(pings), max(pings)]


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--caps", default="32,1000,10000,100000", help="max_sessions values")


def run(report: Report, args: argparse.Namespace, url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=120, protocol=2)
    store = RedisStore.from_url(url, socket_timeout=60, socket_connect_timeout=5)
    hset = statistics.median(
        timed(lambda: client.hset("bench:baseline", "f", b"x" * 200)) for _ in range(500)
    )
    ping = statistics.median(timed(client.ping) for _ in range(500))
    caps = [32, 1000] if args.quick else [int(c) for c in args.caps.split(",")]
    rows = []
    for cap in caps:
        login, revoke, ping_median, ping_worst = measure(url, client, store, cap, args.quick)
        rows.append(
            [
                f"{cap:,}",
                f"{login * 1000:.3f}",
                f"{login / hset:.1f}x",
                f"{revoke * 1000:.3f}",
                f"{revoke / hset:.1f}x",
                f"{ping_median * 1000:.3f}",
                f"{ping_median / ping:.1f}x",
                f"{ping_worst * 1000:.3f}",
                f"{ping_worst / ping:.1f}x",
            ]
        )
    store.close()
    header = ["max_sessions", "login at cap ms", "x HSET", "revoke_all ms", "x HSET"]
    header += ["PING during logins: median ms", "x PING", "worst ms", "x PING"]
    intro = f"{args.made_by}\n\nBaselines in the same run (medians): HSET {hset * 1000:.3f} ms,"
    intro += f" PING {ping * 1000:.3f} ms."
    report.section("What jeff.max_sessions costs on Redis", intro, table(header, rows))


if __name__ == "__main__":
    main("benchmarks.investigations.max_sessions_cost", __doc__, run, options)

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

and, in the same run, a plain ``HSET`` and an idle ``PING`` as baselines. Usage::

    python benchmarks/max_sessions_cost.py [--quick]

It starts its own redis-server on a free port (see ``redis_server.py``) and stops it.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from redis_server import PrivateRedis

from pyramid_jeff.credentials import Credential
from pyramid_jeff.redis_store import RedisStore
from pyramid_jeff.session import Session, pack_record

KEY = "bench@example.com"
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
DAY_MS = 86_400_000


def new_session(now_ms: int) -> tuple[str, Session]:
    credential = Credential.mint(KEY)
    session = Session(
        key=KEY,
        id=credential.session_id,
        created_ms=now_ms,
        last_seen_ms=now_ms,
        expires_ms=now_ms + 30 * DAY_MS,
        ip="192.0.2.1",
        user_agent=UA,
        token_digest=credential.token_digest(),
    )
    return credential.key_digest, session


def fill(client: redis.Redis, store: RedisStore, count: int, now_ms: int) -> str:
    """A key holding ``count`` live sessions, written in bulk (not timed)."""
    digest = Credential.mint(KEY).key_digest
    hash_key = store.hash_key(digest)
    client.delete(hash_key)
    batch: dict[str, bytes] = {}
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        _, session = new_session(now_ms - count + i)
        batch[session.id] = pack_record(session)
        if len(batch) == 1000:
            pipe.hset(hash_key, mapping=batch)  # type: ignore[arg-type]
            batch = {}
    if batch:
        pipe.hset(hash_key, mapping=batch)  # type: ignore[arg-type]
    pipe.pexpire(hash_key, 31 * DAY_MS)
    pipe.execute()
    assert client.hlen(hash_key) == count
    return digest


def timed(call: object) -> float:
    started = time.perf_counter()
    call()  # type: ignore[operator]
    return time.perf_counter() - started


def login_at_cap(store: RedisStore, digest: str, cap: int, now_ms: int) -> int:
    _, session = new_session(now_ms)
    return store.create(digest, session, max_sessions=cap, now_ms=now_ms, idle_timeout_ms=0)


def revoke_all(store: RedisStore, digest: str, now_ms: int) -> int:
    # ``key=`` (only this key's sessions) where the store takes it.
    by_key = {"key": KEY} if "key" in inspect.signature(store.revoke_all).parameters else {}
    return store.revoke_all(digest, keep=None, now_ms=now_ms, idle_timeout_ms=0, **by_key)


def ping_during_logins(
    url: str, store: RedisStore, digest: str, cap: int, now_ms: int, seconds: float
) -> list[float]:
    stop = threading.Event()

    def attacker() -> None:
        while not stop.is_set():
            login_at_cap(store, digest, cap, now_ms)

    other = redis.Redis.from_url(url, socket_timeout=60, protocol=2)
    other.ping()
    thread = threading.Thread(target=attacker)
    thread.start()
    latencies = []
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        latencies.append(timed(other.ping))
        time.sleep(0.002)
    stop.set()
    thread.join()
    other.close()
    return latencies


def ms(seconds: float) -> str:
    return f"{seconds * 1000:9.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--caps", default="32,1000,10000,100000", help="max_sessions values to measure"
    )
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    with PrivateRedis() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=120, protocol=2)
        store = RedisStore.from_url(server.url, socket_timeout=60, socket_connect_timeout=5)
        store.load_scripts()
        now_ms = time.time_ns() // 1_000_000
        baseline_key = "bench:baseline"
        hset = [
            timed(lambda i=i: client.hset(baseline_key, f"f{i % 32}", b"x" * 200))
            for i in range(500)
        ]
        ping = [timed(client.ping) for _ in range(500)]
        hset_ms, ping_ms = statistics.median(hset), statistics.median(ping)
        print(f"redis-server {client.info('server')['redis_version']} on {server.url}")
        print(f"baseline: HSET median {ms(hset_ms)}, PING median {ms(ping_ms)}")
        print()
        header = (
            f"{'max_sessions':>12} | {'login at cap':>12} {'x HSET':>8} | "
            f"{'revoke_all':>12} {'x HSET':>8} | {'PING during logins: median':>26} "
            f"{'x PING':>8} {'worst':>12} {'x PING':>8}"
        )
        print(header)
        print("-" * len(header))
        for cap in caps:
            logins = 5 if cap >= 100_000 else 15 if cap >= 10_000 else 50
            if args.quick:
                logins = max(3, logins // 5)
            digest = fill(client, store, cap, now_ms)
            login = statistics.median(
                timed(lambda d=digest, c=cap: login_at_cap(store, d, c, now_ms))
                for _ in range(logins)
            )
            assert client.hlen(store.hash_key(digest)) == cap
            pings = ping_during_logins(
                server.url, store, digest, cap, now_ms, 1.5 if args.quick else 3.0
            )
            revokes = []
            for _ in range(3 if cap >= 10_000 else 10):
                digest = fill(client, store, cap, now_ms)
                revokes.append(timed(lambda d=digest: revoke_all(store, d, now_ms)))
            revoke = statistics.median(revokes)
            assert client.hlen(store.hash_key(digest)) == 0
            ping_median, ping_worst = statistics.median(pings), max(pings)
            print(
                f"{cap:>12} | {ms(login):>12} {login / hset_ms:>7.1f}x | "
                f"{ms(revoke):>12} {revoke / hset_ms:>7.1f}x | {ms(ping_median):>26} "
                f"{ping_median / ping_ms:>7.1f}x {ms(ping_worst):>12} "
                f"{ping_worst / ping_ms:>7.1f}x"
            )
            client.delete(store.hash_key(digest))
        store.close()
        client.close()


if __name__ == "__main__":
    main()

"""Redis memory per session: fill an empty private Redis through an app's login, then measure.

Two numbers per layout:

* ``MEMORY USAGE <key> SAMPLES 0`` summed over every key, divided by the number of sessions: what
  the sessions' keys and values cost, exactly;
* the growth of ``INFO memory`` ``used_memory`` divided by the sessions: adds the keyspace's own
  dictionary and the expiry table, i.e. what the operator pays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis
from inprocess import environ
from timing import wsgi_caller


@dataclass
class MemoryResult:
    variant: str
    layout: str
    sessions: int
    keys: int
    usage_per_session: float
    used_memory_per_session: float
    seconds: float


def _login_all(app: Any, sessions: int, users: int, tag: str) -> None:
    """``sessions`` logins spread round-robin over ``users`` keys."""
    numbers = iter(range(sessions))

    def vary(env: dict[str, Any]) -> None:
        env["QUERY_STRING"] = f"u={tag}{next(numbers) % users}%40bench.example"

    call = wsgi_caller(app, environ("/login?u=x", "POST"), "200", vary)
    for _ in range(sessions):
        call()


def measure(admin: redis.Redis, variant: str, app: Any, sessions: int, users: int) -> MemoryResult:
    admin.flushall()
    before = int(admin.info("memory")["used_memory"])
    t0 = time.perf_counter()
    _login_all(app, sessions, users, tag=variant.replace("-", ""))
    seconds = time.perf_counter() - t0
    after = int(admin.info("memory")["used_memory"])
    total = 0
    keys = 0
    batch: list[bytes] = []

    def flush() -> int:
        pipe = admin.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        used = sum(int(v or 0) for v in pipe.execute())
        batch.clear()
        return used

    for key in admin.scan_iter(count=1000):
        batch.append(key)
        keys += 1
        if len(batch) >= 1000:
            total += flush()
    total += flush()
    per_user = sessions // users
    layout = f"{users:,} users x {per_user} session{'s' if per_user > 1 else ''}"
    admin.flushall()
    return MemoryResult(
        variant=variant,
        layout=layout,
        sessions=sessions,
        keys=keys,
        usage_per_session=total / sessions,
        used_memory_per_session=(after - before) / sessions,
        seconds=seconds,
    )

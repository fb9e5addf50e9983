"""Redis memory per session: fill an empty private Redis through an app's login, then measure.

Two numbers per layout:

* ``MEMORY USAGE <key> SAMPLES 0`` summed over every key, divided by the number of sessions: what
  the sessions' keys and values cost, exactly;
* the growth of ``INFO memory`` ``used_memory`` divided by the sessions: adds the keyspace's own
  dictionary and the expiry table, i.e. what the operator pays.

Beside them, the ``OBJECT ENCODING`` of the keys (every key is asked). A run may set Redis
configuration (``CONFIG SET`` on the private server, e.g. ``hash-max-listpack-value 512``): the
previous values are read first and put back when the run ends, whatever happens.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
    encodings: dict[str, int]  # OBJECT ENCODING -> keys
    config: dict[str, str]  # CONFIG SET for this run only ({} = the server's defaults)

    def encoding(self) -> str:
        """``hashtable``, or ``listpack 90%, hashtable 10%`` when the keys differ."""
        if len(self.encodings) == 1:
            return next(iter(self.encodings))
        total = sum(self.encodings.values()) or 1
        return ", ".join(
            f"{name} {100 * n / total:.0f}%"
            for name, n in sorted(self.encodings.items(), key=lambda kv: -kv[1])
        )

    def config_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.config.items()) or "default"


@contextmanager
def redis_config(admin: redis.Redis, config: Mapping[str, str]) -> Iterator[None]:
    """``CONFIG SET`` these parameters for the block, then restore the previous values."""
    saved = {name: admin.config_get(name)[name] for name in config}
    try:
        for name, value in config.items():
            admin.config_set(name, value)
        yield
    finally:
        for name, value in saved.items():
            admin.config_set(name, value)


def _login_all(app: Any, sessions: int, users: int, tag: str) -> None:
    """``sessions`` logins spread round-robin over ``users`` keys."""
    numbers = iter(range(sessions))

    def vary(env: dict[str, Any]) -> None:
        env["QUERY_STRING"] = f"u={tag}{next(numbers) % users}%40bench.example"

    call = wsgi_caller(app, environ("/login?u=x", "POST"), "200", vary)
    for _ in range(sessions):
        call()


def measure(
    admin: redis.Redis,
    variant: str,
    app: Any,
    sessions: int,
    users: int,
    config: Mapping[str, str] | None = None,
) -> MemoryResult:
    config = dict(config or {})
    admin.flushall()
    with redis_config(admin, config):
        before = int(admin.info("memory")["used_memory"])
        t0 = time.perf_counter()
        _login_all(app, sessions, users, tag=variant.replace("-", ""))
        seconds = time.perf_counter() - t0
        after = int(admin.info("memory")["used_memory"])
        total, keys, encodings = _usage(admin)
        admin.flushall()
    per_user = sessions // users
    layout = f"{users:,} users x {per_user} session{'s' if per_user > 1 else ''}"
    return MemoryResult(
        variant=variant,
        layout=layout,
        sessions=sessions,
        keys=keys,
        usage_per_session=total / sessions,
        used_memory_per_session=(after - before) / sessions,
        seconds=seconds,
        encodings=dict(encodings),
        config=config,
    )


def _usage(admin: redis.Redis) -> tuple[int, int, Counter[str]]:
    """(MEMORY USAGE summed over every key, number of keys, keys by OBJECT ENCODING)."""
    total = keys = 0
    encodings: Counter[str] = Counter()
    batch: list[bytes] = []

    def flush() -> int:
        pipe = admin.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        replies = pipe.execute()
        used = sum(int(v or 0) for v in replies[0::2])
        encodings.update(
            e.decode() if isinstance(e, bytes) else str(e) for e in replies[1::2] if e is not None
        )
        batch.clear()
        return used

    for key in admin.scan_iter(count=1000):
        batch.append(key)
        keys += 1
        if len(batch) >= 1000:
            total += flush()
    total += flush()
    return total, keys, encodings

"""What a variant makes Redis do: per request, and in bytes per session.

* Commands: ``INFO commandstats`` deltas after ``CONFIG RESETSTAT``, the server's own count,
  which includes the commands a Lua script runs (an ``EVALSHA`` running ``HGET`` counts both).
* Redis CPU: growth of the server's ``used_cpu_user + used_cpu_sys``, which matters in the
  HTTP run, where Redis shares the two cores with the app and the load generator.
* Round trips: redis-py writes (``send_packed_command``, one per pipeline or script).
* Memory: ``MEMORY USAGE key SAMPLES 0`` summed over every key (the sessions' own bytes) and
  the growth of ``used_memory`` (adds the keyspace and expiry tables), per session, beside
  the keys' ``OBJECT ENCODING``; a run may ``CONFIG SET`` for itself only.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.connection import AbstractConnection

from tests.redis_server import RedisServer

from .measure import login_case

_OWN = {"info", "config|resetstat", "config"}  # the measuring connection's own commands


@contextmanager
def count_round_trips() -> Iterator[list[int]]:
    counter, original = [0], AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def _cpu_seconds(admin: redis.Redis) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Work:
    commands: str  # "1.00 (HGET 1)": calls per run, by command
    round_trips: float
    cpu_us: float


def per_call(admin: redis.Redis, call: Callable[[], Any], n: int) -> Work:
    """Run ``call`` n times: what Redis did per run."""
    admin.config_resetstat()
    cpu = _cpu_seconds(admin)
    with count_round_trips() as trips:
        for _ in range(n):
            call()
    cpu = _cpu_seconds(admin) - cpu
    counts = {
        name.removeprefix("cmdstat_"): int(value["calls"]) / n
        for name, value in admin.info("commandstats").items()
    }
    runs = {name: v for name, v in sorted(counts.items()) if name not in _OWN}
    parts = ", ".join(f"{name.upper()} {v:.2g}" for name, v in runs.items())
    text = f"{sum(runs.values()):.2f} ({parts})" if runs else "0"
    return Work(text, trips[0] / n, cpu / n * 1e6)


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


@dataclass
class Memory:
    variant: str
    layout: str
    config: dict[str, str]  # {} = the server's defaults
    keys: int
    encodings: Counter[str]
    usage: float  # MEMORY USAGE bytes per session
    used_memory: float  # used_memory growth per session
    seconds: float

    def encoding(self) -> str:
        """``hashtable``, or ``listpack 90%, hashtable 10%`` when the keys differ."""
        if len(self.encodings) == 1:
            return next(iter(self.encodings))
        total = sum(self.encodings.values()) or 1
        return ", ".join(f"{e} {100 * n / total:.0f}%" for e, n in self.encodings.most_common())

    def config_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.config.items()) or "default"


def memory(
    admin: redis.Redis, variant: str, app: Any, sessions: int, users: int, config: dict[str, str]
) -> Memory:
    """Fill an empty Redis with ``sessions`` logins over ``users`` keys, then measure."""
    admin.flushall()
    with redis_config(admin, config):
        before, t0 = int(admin.info("memory")["used_memory"]), time.perf_counter()
        call = login_case(variant, variant, app, users).call
        for _ in range(sessions):
            call()
        seconds = time.perf_counter() - t0
        used = int(admin.info("memory")["used_memory"]) - before
        usage, keys, encodings = _usage(admin)
        admin.flushall()
    per_user = sessions // users
    layout = f"{users:,} users x {per_user} session{'s' if per_user > 1 else ''}"
    return Memory(
        variant, layout, config, keys, encodings, usage / sessions, used / sessions, seconds
    )


def _usage(admin: redis.Redis) -> tuple[int, int, Counter[str]]:
    """(MEMORY USAGE summed over every key, number of keys, keys by OBJECT ENCODING)."""
    total, keys, encodings = 0, list(admin.scan_iter(count=1000)), Counter[str]()
    for start in range(0, len(keys), 1000):
        pipe = admin.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        replies = pipe.execute()
        total += sum(int(v or 0) for v in replies[0::2])
        encodings.update(e.decode() if isinstance(e, bytes) else str(e) for e in replies[1::2])
    return total, len(keys), encodings


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """The tests' redis-server on a free port, no persistence (FLUSHALL is safe)."""
    with tempfile.TemporaryDirectory(prefix="jeff-bench-") as tmp:
        server = RedisServer.start(Path(tmp))
        try:
            yield server
        finally:
            server.stop()

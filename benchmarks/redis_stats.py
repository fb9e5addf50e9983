"""Redis work per request: commands (server side) and round trips (client side).

* Commands come from ``INFO commandstats`` deltas after ``CONFIG RESETSTAT``: the server's own
  count, which includes the commands a Lua script runs (an ``EVALSHA`` running an ``HGET`` counts
  both).
* Redis CPU is the growth of ``INFO cpu`` (user + sys) of the private server: parsing, running,
  replying, its share of the syscalls. It matters in the HTTP run, where Redis competes with the
  app and the load generator for the same two cores.
* Round trips are counted in redis-py: every ``send_packed_command`` is one write followed by
  waiting for the reply (a pipeline or a script is one). The raw-socket floor is not counted
  (it does exactly one by construction).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import AbstractConnection

_IGNORED = {"info", "config|resetstat", "config"}  # the measuring connection's own commands


@contextmanager
def count_round_trips() -> Iterator[list[int]]:
    """Count redis-py writes (one per round trip) while the block runs."""
    counter = [0]
    original = AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> Any:
        counter[0] += 1
        return original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


def command_counts(admin: redis.Redis) -> Counter[str]:
    stats = admin.info("commandstats")
    counts: Counter[str] = Counter()
    for key, value in stats.items():
        name = key.removeprefix("cmdstat_")
        if name not in _IGNORED:
            counts[name] = int(value["calls"])
    return counts


@dataclass
class Work:
    commands: dict[str, float]  # calls per run, by command (server view)
    round_trips: float  # redis-py writes per run
    cpu_us: float  # redis-server CPU (user + sys) per run, from INFO cpu


def _cpu_seconds(admin: redis.Redis) -> float:
    info = admin.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def per_call(admin: redis.Redis, call: Callable[[], Any], n: int) -> Work:
    """Run ``call`` n times; what Redis did per run."""
    admin.config_resetstat()
    cpu0 = _cpu_seconds(admin)
    with count_round_trips() as trips:
        for _ in range(n):
            call()
    cpu1 = _cpu_seconds(admin)
    counts = command_counts(admin)
    return Work(
        {k: v / n for k, v in sorted(counts.items())}, trips[0] / n, (cpu1 - cpu0) / n * 1e6
    )


def format_commands(per_run: dict[str, float]) -> str:
    if not per_run:
        return "0"
    total = sum(per_run.values())
    parts = ", ".join(f"{name.upper()} {v:.2g}" for name, v in per_run.items())
    return f"{total:.2f} ({parts})"

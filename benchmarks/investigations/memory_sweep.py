"""How long a request waits while the memory store sweeps dead sessions.

    python -m benchmarks.investigations.memory_sweep [--sessions N] [--store DOTTED.NAME]

Fills a MemoryStore with N keys of one session each, then, for each case, moves the
clock and makes logins (``create``, which sweeps) back to back from one thread while
another thread calls ``get()`` in a loop and times each call. Cases:

- ``nothing due``: the clock is past the sweep interval but no session is dead;
- ``all expire``: every session is past its absolute lifetime at once;
- ``all idle``: every session is dead of idleness (idle timeout 30 min, sessions
  unused for an hour), but not yet expired.

Each case logs in until the store holds nothing dead (or a bound on writes is reached)
and prints the worst, 99th percentile and median ``get()`` latency seen meanwhile, the
longest single ``create()``, and how many sessions are left.
``--store`` names another implementation (a dotted name of a class) to compare.

Latencies include waiting for the GIL (Python switches threads every 5 ms), as a
request thread in a threaded WSGI server would, and whatever else the machine runs: on a
busy machine the wall-clock columns show its noise (the old store, which never drops
idle sessions, shows "stalls" in ``all idle`` too). ``longest write cpu ms`` is the CPU
time of the slowest write, which is how long it held the lock, whatever the machine.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from typing import Any

from pyramid.path import DottedNameResolver

from pyramid_jeff import MemoryStore, Session

from ..report import Report, table
from . import main

START_MS = 1_800_000_000_000
MAX_AGE_MS = 30 * 24 * 3600 * 1000
IDLE_MS = 30 * 60 * 1000
MAX_WRITES = 10_000  # the old store never drops idle sessions: stop somewhere
MIN_SECONDS = 1.0  # measure at least this long, even when one write swept everything
PAUSE_SECONDS = 0.0005
RING = 2_000_000  # latencies kept for the percentiles (the latest ones)


def fill(store: Any, sessions: int, idle_ms: int) -> None:
    for number in range(sessions):
        session = Session(
            key="k",
            id="s",
            created_ms=START_MS,
            last_seen_ms=START_MS,
            expires_ms=START_MS + MAX_AGE_MS,
        )
        store.create(
            f"{number:022d}", session, max_sessions=32, now_ms=START_MS, idle_timeout_ms=idle_ms
        )


def dead_left(store: Any, sessions: int) -> bool:
    """Whether a sample of the filled keys still holds its session (O(1) reads, no lock
    held for long: a count over a million sessions would itself stall the reader)."""
    return any(
        store.get(f"{n:022d}", "s") is not None for n in range(0, sessions, sessions // 64 or 1)
    )


class Reader(threading.Thread):
    """Times ``store.get`` in a loop, once ``measuring`` is set, until ``stop`` is."""

    def __init__(self, store: Any, key: str) -> None:
        super().__init__()
        self.store, self.key = store, key
        self.stop, self.ready, self.measuring = (threading.Event() for _ in range(3))
        # The latest latencies in a ring allocated up front: a list growing to tens of
        # millions of entries would stall the reader each time it is reallocated. The
        # worst latency and the count cover every get.
        self.ring, self.gets, self.worst = [0] * RING, 0, 0

    def run(self) -> None:
        key, get, clock, ring = self.key, self.store.get, time.perf_counter_ns, self.ring
        count, worst = 0, 0
        self.ready.set()
        while not self.stop.is_set():
            before = clock()
            get(key, "s")
            elapsed = clock() - before
            if self.measuring.is_set():  # only what happens once the writes start
                ring[count % RING] = elapsed
                count += 1
                worst = max(worst, elapsed)
        self.gets, self.worst = count, worst


def write_until_clean(store: Any, sessions: int, case: str, now: int, idle_ms: int) -> list[Any]:
    """Log in back to back until nothing dead is left: (writes, seconds, longest, cpu)."""
    writes, longest, longest_cpu, started = 0, 0, 0, time.perf_counter()
    while True:
        session = Session(key="n", id="s", created_ms=now, last_seen_ms=now, expires_ms=now + 1)
        before, before_cpu = time.perf_counter_ns(), time.thread_time_ns()
        key = f"new{writes:019d}"
        store.create(key, session, max_sessions=32, now_ms=now, idle_timeout_ms=idle_ms)
        longest = max(longest, time.perf_counter_ns() - before)
        longest_cpu = max(longest_cpu, time.thread_time_ns() - before_cpu)
        writes += 1
        # nothing is due in "nothing due": it writes for MIN_SECONDS
        done = case == "nothing due" or writes >= MAX_WRITES or not dead_left(store, sessions)
        if done and time.perf_counter() - started >= MIN_SECONDS:
            return [writes, time.perf_counter() - started, longest / 1e6, longest_cpu / 1e6]
        time.sleep(PAUSE_SECONDS)  # logins arrive among the reads, not in one burst


def run_case(store_class: Any, sessions: int, case: str) -> dict[str, Any]:
    idle_ms = IDLE_MS if case == "all idle" else 0
    store = store_class()
    fill(store, sessions, idle_ms)
    now = {
        "nothing due": START_MS + 61_000,
        "all expire": START_MS + MAX_AGE_MS + 1,
        "all idle": START_MS + 2 * IDLE_MS,
    }[case]
    gc.collect()
    gc.disable()  # a collection of a million objects would be measured as a stall
    reader = Reader(store, f"{sessions // 2:022d}")
    reader.start()
    reader.ready.wait()
    time.sleep(0.05)
    reader.measuring.set()
    writes = write_until_clean(store, sessions, case, now, idle_ms)
    reader.stop.set()
    reader.join()
    gc.enable()
    latencies = reader.ring[: min(reader.gets, RING)]
    left = int(store.stats()["keys"]) - writes[0]  # every key held one session
    store.close()
    names = ["writes", "writes s", "longest write ms", "longest write cpu ms"]
    return dict(zip(names, writes, strict=True)) | {
        "case": case,
        "gets": reader.gets,
        "worst get ms": reader.worst / 1e6,
        "p99 get ms": statistics.quantiles(latencies, n=100)[98] / 1e6,
        "median get us": statistics.median(latencies) / 1e3,
        "left": left,
    }


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


COLUMNS = ["case", "writes", "writes s", "longest write ms", "longest write cpu ms", "gets"]
COLUMNS += ["worst get ms", "p99 get ms", "median get us", "left"]


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--store", default="pyramid_jeff.MemoryStore", help="a class to compare")
    parser.add_argument(
        "--cases", default="nothing due,all expire,all idle", help="comma-separated"
    )


def run(report: Report, args: argparse.Namespace, url: str) -> None:
    store_class = (
        MemoryStore
        if args.store == "pyramid_jeff.MemoryStore"
        else DottedNameResolver().resolve(args.store)
    )
    sessions = 20_000 if args.quick else args.sessions
    results = [run_case(store_class, sessions, case.strip()) for case in args.cases.split(",")]
    rows = [[cell(result[column]) for column in COLUMNS] for result in results]
    intro = f"{args.made_by}\n\n`{args.store}`, {sessions:,} sessions."
    report.section(
        "The memory store's sweep: worst request latency meanwhile", intro, table(COLUMNS, rows)
    )


if __name__ == "__main__":
    main("benchmarks.investigations.memory_sweep", __doc__, run, options, with_redis=False)

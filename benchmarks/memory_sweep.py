"""How long a request waits while the memory store sweeps dead sessions.

    python benchmarks/memory_sweep.py [--sessions N] [--store-file PATH]

Fills a MemoryStore with N keys of one session each, then, for each case, moves the
clock and makes logins (``create``, which sweeps) back to back from one thread while
another thread calls ``get()`` in a loop and times each call. Cases:

- ``nothing due``: the clock is past the sweep interval but no session is dead;
- ``all expire``: every session is past its absolute lifetime at once;
- ``all idle``: every session is dead of idleness (idle timeout 30 min, sessions
  unused for an hour), but not yet expired.

Each case logs in until the store holds nothing dead (or a bound on writes is reached)
and prints the worst, 99th percentile and median ``get()`` latency seen meanwhile, the
longest single ``create()``, and how many sessions are left. ``--store-file`` loads
``MemoryStore`` from another file, e.g. the previous implementation::

    git show HEAD:pyramid_jeff/memory_store.py > /tmp/old_memory_store.py
    python benchmarks/memory_sweep.py --store-file /tmp/old_memory_store.py

Latencies include waiting for the GIL (Python switches threads every 5 ms), as a
request thread in a threaded WSGI server would, and whatever else the machine runs: on a
busy machine the wall-clock columns show its noise (the old store, which never drops
idle sessions, shows "stalls" in ``all idle`` too). ``longest write cpu ms`` is the CPU
time of the slowest write, which is how long it held the lock, whatever the machine.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyramid_jeff
from pyramid_jeff.session import Session

START_MS = 1_800_000_000_000
MAX_AGE_MS = 30 * 24 * 3600 * 1000
IDLE_MS = 30 * 60 * 1000
MAX_WRITES = 10_000  # the old store never drops idle sessions: stop somewhere
MIN_SECONDS = 1.0  # measure at least this long, even when one write swept everything
PAUSE_SECONDS = 0.0005
RING = 2_000_000  # latencies kept for the percentiles (the latest ones)


def load_store_class(path: str | None) -> Any:
    if path is None:
        from pyramid_jeff.memory_store import MemoryStore

        return MemoryStore
    # Named inside the package so its relative imports (``.session``) resolve.
    spec = importlib.util.spec_from_file_location("pyramid_jeff._bench_store", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.MemoryStore


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


def old_keys_left(store: Any, writes: int) -> int:
    # Every key holds one session, and both implementations drop a key with its last
    # session: an O(1) count that takes no lock (a sum over the sessions would stall).
    return len(store._sessions) - writes


def run_case(store_class: Any, sessions: int, case: str) -> dict[str, Any]:
    idle_ms = IDLE_MS if case == "all idle" else 0
    store = store_class()
    started = time.perf_counter()
    fill(store, sessions, idle_ms)
    fill_seconds = time.perf_counter() - started
    now = {
        "nothing due": START_MS + 61_000,
        "all expire": START_MS + MAX_AGE_MS + 1,
        "all idle": START_MS + 2 * IDLE_MS,
    }[case]
    expect_left = sessions if case == "nothing due" else 0
    gc.collect()
    gc.disable()  # a collection of a million objects would be measured as a stall

    # A ring of the latest latencies, allocated up front: a list growing to tens of
    # millions of entries would itself stall the reader for hundreds of milliseconds
    # each time it is reallocated. The worst latency and the count cover every get.
    ring = [0] * RING
    seen = {"gets": 0, "worst": 0}
    stop = threading.Event()
    ready = threading.Event()
    measuring = threading.Event()

    def reader() -> None:
        key, get, clock = f"{sessions // 2:022d}", store.get, time.perf_counter_ns
        count, worst = 0, 0
        ready.set()
        while not stop.is_set():
            before = clock()
            get(key, "s")
            elapsed = clock() - before
            if measuring.is_set():  # only what happens once the writes start
                ring[count % RING] = elapsed
                count += 1
                if elapsed > worst:
                    worst = elapsed
        seen["gets"], seen["worst"] = count, worst

    thread = threading.Thread(target=reader)
    thread.start()
    ready.wait()
    time.sleep(0.05)
    measuring.set()
    writes, longest_write, longest_write_cpu = 0, 0, 0
    write_started = time.perf_counter()
    while True:
        session = Session(key="n", id="s", created_ms=now, last_seen_ms=now, expires_ms=now + 1)
        before, before_cpu = time.perf_counter_ns(), time.thread_time_ns()
        store.create(
            f"new{writes:019d}", session, max_sessions=32, now_ms=now, idle_timeout_ms=idle_ms
        )
        longest_write = max(longest_write, time.perf_counter_ns() - before)
        longest_write_cpu = max(longest_write_cpu, time.thread_time_ns() - before_cpu)
        writes += 1
        done = old_keys_left(store, writes) <= expect_left or writes >= MAX_WRITES
        if done and time.perf_counter() - write_started >= MIN_SECONDS:
            break
        time.sleep(PAUSE_SECONDS)  # logins arrive among the reads, not in one burst
    write_seconds = time.perf_counter() - write_started
    stop.set()
    thread.join()
    gc.enable()
    latencies = ring[: min(seen["gets"], RING)]
    left = old_keys_left(store, writes)
    store.close()
    return {
        "case": case,
        "fill s": fill_seconds,
        "writes": writes,
        "writes s": write_seconds,
        "longest write ms": longest_write / 1e6,
        "longest write cpu ms": longest_write_cpu / 1e6,
        "gets": seen["gets"],
        "worst get ms": seen["worst"] / 1e6,
        "p99 get ms": statistics.quantiles(latencies, n=100)[98] / 1e6,
        "median get us": statistics.median(latencies) / 1e3,
        "left": left,
    }


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--store-file", help="load MemoryStore from this file instead")
    parser.add_argument(
        "--cases", default="nothing due,all expire,all idle", help="comma-separated"
    )
    args = parser.parse_args()
    store_class = load_store_class(args.store_file)
    source = args.store_file or pyramid_jeff.memory_store.__file__
    print(
        f"MemoryStore from {source}, {args.sessions:,} sessions, Python {sys.version.split()[0]}"
    )
    columns = [
        "case",
        "writes",
        "writes s",
        "longest write ms",
        "longest write cpu ms",
        "gets",
        "worst get ms",
        "p99 get ms",
        "median get us",
        "left",
    ]
    print(" | ".join(columns))
    for case in args.cases.split(","):
        row = run_case(store_class, args.sessions, case.strip())
        print(" | ".join(cell(row[column]) for column in columns), flush=True)


if __name__ == "__main__":
    main()

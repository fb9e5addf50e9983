"""What the race tests share (test_races_*.py): forked worker processes and their results,
timed logins, and what Redis holds for a key read behind the manager's back.

Every worker is a forked process that builds its own :class:`SessionManager` on the
shared Redis, as a multi-process WSGI server (gunicorn, uwsgi) would. Sizes are small
enough for CI (well under a minute on two cores); ``JEFF_RACE_SCALE=10`` multiplies
the work for a longer soak run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.credentials import key_digest
from pyramid_jeff.session import unpack_record

from ..helpers import now_ms, run_together

SCALE = max(1, int(os.environ.get("JEFF_RACE_SCALE", "1")))
KEY = "racer@example.com"
PROCESSES = 4
WORKER_TIMEOUT = 120 * SCALE  # seconds; a hung worker fails the test instead of CI

# Forked workers inherit the test module (and the Barrier/Queue objects) as they are;
# every Redis connection is made inside the child.
FORK = multiprocessing.get_context("fork")


def new_manager(url: str, **options: Any) -> SessionManager:
    store = RedisStore.from_url(url, socket_timeout=10, socket_connect_timeout=10)
    return SessionManager(store, **options)


@dataclass(frozen=True)
class Login:
    """One remember() as a worker saw it: what it got and when (wall clock, ms)."""

    session_id: str
    cookie: str
    created_ms: int
    started_ms: int  # before the call
    returned_ms: int  # after the call returned
    started_mono: float  # time.monotonic(): comparable across processes on Linux
    returned_mono: float


def timed_login(manager: SessionManager, key: str) -> Login:
    started_ms, started_mono = now_ms(), time.monotonic()
    session, credential = manager.create(key, ip="192.0.2.7", user_agent="race/1")
    return Login(
        session.id,
        credential.encode(),
        session.created_ms,
        started_ms,
        now_ms(),
        started_mono,
        time.monotonic(),
    )


class Workers:
    """Forked processes running ``target(*arguments)``, one per argument tuple.

    Fork them before starting any thread in this process (a fork copies only the
    calling thread, and whatever locks the others held). Each worker puts exactly one
    item on a queue: its return value, or the traceback of what it raised, which
    :meth:`results` turns into a test failure.
    """

    def __init__(self, target: Callable[..., Any], argument_lists: Iterable[tuple[Any, ...]]):
        self.queue = FORK.Queue()

        def entry(*arguments: Any) -> None:
            try:
                self.queue.put(("ok", target(*arguments)))
            except BaseException:
                self.queue.put(("error", traceback.format_exc()))

        self.processes = [FORK.Process(target=entry, args=args) for args in argument_lists]
        for process in self.processes:
            process.start()

    def results(self) -> list[Any]:
        outcomes = []
        deadline = time.monotonic() + WORKER_TIMEOUT
        try:
            for _ in self.processes:  # drain before join: a full pipe blocks the children
                outcomes.append(self.queue.get(timeout=max(1.0, deadline - time.monotonic())))
        except queue.Empty:
            pytest.fail(f"a race worker did not finish within {WORKER_TIMEOUT} s")
        finally:
            for process in self.processes:
                process.join(timeout=10)
                if process.is_alive():  # only ever our own children
                    process.kill()
                    process.join()
        errors = [detail for status, detail in outcomes if status == "error"]
        assert not errors, "a worker failed:\n" + "\n".join(errors)
        return [detail for _, detail in outcomes]


def run_workers(
    target: Callable[..., Any], argument_lists: Iterable[tuple[Any, ...]]
) -> list[Any]:
    return Workers(target, argument_lists).results()


def run_threads(count: int, target: Callable[[], None]) -> None:
    """Run ``target`` in ``count`` threads and re-raise the first exception one raised."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    run_together(threading.Thread(target=guarded) for _ in range(count))
    if errors:
        raise errors[0]


def hash_fields(client: redis.Redis, key: str) -> dict[str, bytes]:
    """The sessions Redis holds for ``key``, read directly (default prefix ``jeff:``),
    but the tombstones that revocations and evictions leave (a torn record raises)."""
    raw = client.hgetall(f"jeff:{{{key_digest(key)}}}")
    fields = {name.decode(): value for name, value in raw.items()}
    return {
        name: value for name, value in fields.items() if unpack_record(name, value).ended is None
    }


def assert_no_half_state(client: redis.Redis, manager: SessionManager, key: str) -> None:
    """Every field but the tombstones is a readable, live session of ``key`` that lists
    and verifies."""
    fields = hash_fields(client, key)
    listed = {s.id for s in manager.sessions(key)}
    assert set(fields) == listed, "Redis holds fields the manager does not list (or vice versa)"
    for session_id, value in fields.items():
        record = unpack_record(session_id, value)  # raises on a torn or foreign record
        assert record.key == key
    if fields:
        ttl = client.pttl(f"jeff:{{{key_digest(key)}}}")
        assert ttl > 0, "a session hash without a TTL would never be reclaimed"


def results_beside(workers: Workers, operator: Callable[[], None], stop: Any) -> list[Any]:
    """The results of ``workers``, with ``operator`` run meanwhile in a thread of this
    process (started only now, once every worker is forked); ``stop`` is set at the end,
    whatever happened."""
    thread = threading.Thread(target=operator)
    thread.start()
    try:
        return workers.results()
    finally:
        stop.set()
        thread.join()


def login_worker(
    url: str, barrier: Any, logins: int, threads: int, max_sessions: int
) -> list[Login]:
    manager = new_manager(url, max_sessions=max_sessions)
    manager.sessions(KEY)  # connect before the start line, not after it
    barrier.wait(timeout=60)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda _: timed_login(manager, KEY), range(logins)))


def storm(url: str, max_sessions: int) -> list[Login]:
    logins = 100 * SCALE
    barrier = FORK.Barrier(PROCESSES)
    per_worker = run_workers(login_worker, [(url, barrier, logins, 25, max_sessions)] * PROCESSES)
    everything = [login for worker in per_worker for login in worker]
    assert len(everything) == PROCESSES * logins
    assert len({login.session_id for login in everything}) == len(everything)
    return everything

"""The atomicity invariants of design.md under real concurrency: several worker
*processes* (each with its own connection pool and threads) against one real Redis.

These are the races other session libraries lost:

- jeff's README admits that its read-modify-write of a key's session list loses
  sessions created concurrently and can let a cleared session survive;
- flask-session #71 and connect-redis #346: concurrent requests overwrite each other's
  writes, so data (here: sessions, last_seen refreshes) silently disappears;
- gorilla/sessions #10 (and connect-redis #328): a slow request saves its session after
  a logout deleted it, and the session comes back to life.

Every worker is a forked process that builds its own :class:`SessionManager` on the
shared Redis, as a multi-process WSGI server (gunicorn, uwsgi) would. Sizes are small
enough for CI (well under a minute on two cores); ``JEFF_RACE_SCALE=10`` multiplies
the work for a longer soak run.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from pyramid.interfaces import ISecurityPolicy
from webob import Request

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.manager import DEFAULT_MAX_SESSIONS
from pyramid_jeff.session import unpack_record

from .app import make_wsgi_app

pytestmark = pytest.mark.usefixtures("redis_client")  # a flushed database per test

SCALE = max(1, int(os.environ.get("JEFF_RACE_SCALE", "1")))
KEY = "racer@example.com"
PROCESSES = 4
WORKER_TIMEOUT = 120 * SCALE  # seconds; a hung worker fails the test instead of CI

# Forked workers inherit the test module (and the Barrier/Queue objects) as they are;
# every Redis connection is made inside the child.
FORK = multiprocessing.get_context("fork")


def now_ms() -> int:
    return time.time_ns() // 1_000_000  # the manager's default clock


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

    threads = [threading.Thread(target=guarded) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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


# --- 4 processes x 100 concurrent logins --------------------------------------------------


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


def test_concurrent_logins_from_four_processes_lose_nothing(
    redis_url: str, redis_client: redis.Redis
) -> None:
    logins = storm(redis_url, max_sessions=100_000)
    manager = new_manager(redis_url, max_sessions=100_000)
    listed = {s.id for s in manager.sessions(KEY)}
    lost = {login.session_id for login in logins} - listed
    assert not lost, f"{len(lost)} of {len(logins)} sessions lost"
    assert len(listed) == len(logins)
    for login in logins:
        session = manager.verify(Credential.decode(login.cookie))  # type: ignore[arg-type]
        assert session is not None and session.id == login.session_id
    assert_no_half_state(redis_client, manager, KEY)


def test_concurrent_logins_past_the_cap_keep_exactly_the_newest(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """The documented default cap holds under a storm, and its victims are the oldest."""
    cap = DEFAULT_MAX_SESSIONS
    logins = storm(redis_url, max_sessions=cap)
    manager = new_manager(redis_url, max_sessions=cap)
    listed = {s.id for s in manager.sessions(KEY)}
    assert len(listed) == cap, f"{len(listed)} sessions survive a cap of {cap}"
    survivors = [login for login in logins if login.session_id in listed]
    victims = [login for login in logins if login.session_id not in listed]
    assert len(survivors) == cap
    for login in survivors:
        assert manager.verify(Credential.decode(login.cookie)) is not None  # type: ignore[arg-type]
    for login in victims:
        assert manager.verify(Credential.decode(login.cookie)) is None  # type: ignore[arg-type]
    # Eviction takes the oldest *present* session. Which are present depends on the
    # order in which Redis ran the logins, so the only impossible outcome is a survivor
    # that had already been stored (its login returned) before a victim was even created:
    # that survivor was older than the victim at every eviction that could take either.
    first_survivor_stored = min(login.returned_ms for login in survivors)
    last_victim_created = max(login.created_ms for login in victims)
    assert first_survivor_stored >= last_victim_created, "a newer session was evicted first"
    # One more, sequential login ends exactly the oldest of the survivors.
    oldest = min(manager.sessions(KEY), key=lambda s: (s.created_ms, s.id))
    newest, _ = manager.create(KEY)
    after = {s.id for s in manager.sessions(KEY)}
    assert after == (listed - {oldest.id}) | {newest.id}
    assert_no_half_state(redis_client, manager, KEY)


# --- revoke_all racing a stream of logins -------------------------------------------------


def streaming_login_worker(
    url: str, barrier: Any, stop: Any, threads: int, made: Any
) -> list[Login]:
    manager = new_manager(url, max_sessions=100_000)
    manager.sessions(KEY)
    barrier.wait(timeout=60)
    done: list[Login] = []
    lock = threading.Lock()

    def loop() -> None:
        while not stop.is_set():
            login = timed_login(manager, KEY)
            with lock:
                done.append(login)
            with made.get_lock():
                made.value += 1

    run_threads(threads, loop)
    return done


def test_revoke_all_racing_a_stream_of_logins(redis_url: str, redis_client: redis.Redis) -> None:
    barrier = FORK.Barrier(PROCESSES + 1)
    stop = FORK.Event()
    made = FORK.Value("i", 0)  # logins returned so far, in all workers
    revokes: list[tuple[float, float, int]] = []  # (called, returned) monotonic, ended

    def logins_since(count: int, more: int) -> None:
        # However slow the machine, each revoke_all has logins in flight around it.
        ends = time.monotonic() + 60
        while made.value < count + more and time.monotonic() < ends:
            time.sleep(0.005)

    def operator() -> None:
        manager = new_manager(redis_url, max_sessions=100_000)
        manager.sessions(KEY)
        barrier.wait(timeout=60)
        try:
            for _ in range(8 * SCALE):
                before = made.value
                time.sleep(0.08)
                logins_since(before, 15)
                called = time.monotonic()
                ended = manager.revoke_all(KEY)
                revokes.append((called, time.monotonic(), ended))
            logins_since(made.value, 15)
        finally:
            stop.set()

    workers = Workers(streaming_login_worker, [(redis_url, barrier, stop, 4, made)] * PROCESSES)
    thread = threading.Thread(target=operator)  # only once every worker is forked
    thread.start()
    try:
        per_worker = workers.results()
    finally:
        stop.set()
        thread.join()
    logins = [login for worker in per_worker for login in worker]
    assert len(revokes) == 8 * SCALE
    assert len(logins) > 10 * len(revokes), "too few logins raced the revocations"

    manager = new_manager(redis_url, max_sessions=100_000)
    live = {s.id for s in manager.sessions(KEY)}
    # Every session whose login had returned before a revoke_all was called is dead.
    last_revoke_called = max(called for called, _, _ in revokes)
    survived = [
        login
        for login in logins
        if login.returned_mono < last_revoke_called and login.session_id in live
    ]
    assert not survived, f"{len(survived)} sessions outlived a revoke_all issued after them"
    # Every session created after the last revoke_all returned is alive.
    last_revoke_returned = max(returned for _, returned, _ in revokes)
    lost = [
        login
        for login in logins
        if login.started_mono > last_revoke_returned and login.session_id not in live
    ]
    assert not lost, f"{len(lost)} sessions created after the last revoke_all were lost"
    # No half-state: each session is either ended by exactly one revoke_all (which
    # counted it) or alive, listed and verifiable; nothing else is left in Redis.
    ended = sum(count for _, _, count in revokes)
    assert ended + len(live) == len(logins), (ended, len(live), len(logins))
    assert live <= {login.session_id for login in logins}
    for login in logins:
        verified = manager.verify(Credential.decode(login.cookie))  # type: ignore[arg-type]
        assert (verified is not None) == (login.session_id in live)
    assert_no_half_state(redis_client, manager, KEY)


# --- a slow request refreshing last_seen while its session is revoked ---------------------


class SlowReadStore:
    """A Redis store whose reads stall between reading and returning, on demand.

    This is the "slow request" of gorilla/sessions #10: it has read the session, and
    before it writes back (here: the last_seen refresh) a logout or an operator ends
    the session.
    """

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.read_done = threading.Event()
        self.release = threading.Event()
        self.stall = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def get(self, key_digest: str, session_id: str) -> Any:
        session = self.store.get(key_digest, session_id)
        if self.stall:
            self.read_done.set()
            assert self.release.wait(timeout=30)
        return session


def test_a_slow_request_never_resurrects_a_revoked_session(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """End to end: a request that read its session, stalled, then refreshed last_seen
    after an operator in another process revoked the session."""
    wsgi = make_wsgi_app({"jeff.store": redis_url, "jeff.cookie_secure": "false"})
    manager: SessionManager = wsgi.registry.getUtility(ISecurityPolicy).manager
    session, credential = manager.create(KEY)
    # The request runs a minute later, so it refreshes last_seen after its read.
    manager.clock = lambda: now_ms() + 61_000
    slow = SlowReadStore(manager.store)  # type: ignore[arg-type]
    manager.store = slow  # type: ignore[assignment]
    go = FORK.Event()
    operator = Workers(revoke_worker, [(redis_url, session.id, go)])  # forked first
    outcome: dict[str, Any] = {}

    def slow_request() -> None:
        request = Request.blank("/protected", headers={"Cookie": f"jeff={credential.encode()}"})
        outcome["response"] = request.get_response(wsgi)

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        assert slow.read_done.wait(timeout=30), "the request never read its session"
        go.set()  # the operator revokes the session while the request stalls
        assert operator.results() == [True]
    finally:
        go.set()
        slow.release.set()
        thread.join(timeout=30)
    response = outcome["response"]
    assert response.status_code == 303, "a revoked session served a protected page"
    assert hash_fields(redis_client, KEY) == {}, "the refresh brought the session back"
    slow.stall = False
    assert new_manager(redis_url).verify(credential) is None


def revoke_worker(url: str, session_id: str, go: Any) -> bool:
    manager = new_manager(url)
    manager.sessions(KEY)
    assert go.wait(timeout=60)
    return manager.revoke(KEY, session_id)


def hammer_worker(
    url: str, barrier: Any, stop: Any, cookies: list[str], clock_offset_ms: int
) -> tuple[int, int]:
    """Verify the given sessions in a loop, each verify a due last_seen refresh."""
    ticks = iter(range(1, 10**9))
    manager = new_manager(url, max_sessions=100_000)
    # Every read sees a clock a minute ahead of the last refresh: each verify writes.
    manager.clock = lambda: now_ms() + clock_offset_ms + 61_000 * next(ticks)
    credentials = [Credential.decode(cookie) for cookie in cookies]
    manager.sessions(KEY)
    barrier.wait(timeout=60)
    verified = refused = 0
    while not stop.is_set():
        for credential in credentials:
            if manager.verify(credential) is None:  # type: ignore[arg-type]
                refused += 1
            else:
                verified += 1
    return verified, refused


def test_touches_racing_revocations_never_resurrect(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Many processes keep refreshing sessions while another revokes them one by one."""
    manager = new_manager(redis_url, max_sessions=100_000)
    pairs = [manager.create(KEY) for _ in range(40 * SCALE)]
    cookies = [credential.encode() for _, credential in pairs]
    barrier = FORK.Barrier(PROCESSES + 1)
    stop = FORK.Event()
    resurrections: list[str] = []
    revoked_at: dict[str, float] = {}

    def operator() -> None:
        barrier.wait(timeout=60)
        try:
            order = list(pairs)
            random.Random(4).shuffle(order)
            for session, _ in order[: len(order) // 2]:
                time.sleep(0.01)
                assert manager.revoke(KEY, session.id)
                revoked_at[session.id] = time.monotonic()
                if session.id in hash_fields(redis_client, KEY):
                    resurrections.append(session.id)
            time.sleep(0.2)  # refreshes keep coming at the revoked sessions
        finally:
            stop.set()

    workers = Workers(hammer_worker, [(redis_url, barrier, stop, cookies, 0)] * PROCESSES)
    thread = threading.Thread(target=operator)
    thread.start()
    try:
        results = workers.results()
    finally:
        stop.set()
        thread.join()
    assert sum(verified for verified, _ in results) > len(pairs), "the refreshes did not run"
    stored = hash_fields(redis_client, KEY)
    resurrections += [sid for sid in revoked_at if sid in stored]
    assert not resurrections, f"{len(resurrections)} revoked sessions came back"
    survivors = {s.id for s, _ in pairs} - set(revoked_at)
    assert set(stored) == survivors, "a refresh lost a session that was never revoked"
    assert_no_half_state(redis_client, manager, KEY)


# --- parallel touches of sessions of one key ----------------------------------------------


def toucher_worker(
    url: str, barrier: Any, cookie: str, rounds: int, offset_ms: int
) -> tuple[str, int]:
    manager = new_manager(url, max_sessions=100_000)
    credential = Credential.decode(cookie)
    assert credential is not None
    tick = [0]

    def clock() -> int:
        tick[0] += 1
        return now_ms() + offset_ms + 61_000 * tick[0]

    manager.clock = clock
    manager.sessions(KEY)
    barrier.wait(timeout=60)
    last_seen = 0
    for _ in range(rounds):
        session = manager.verify(credential)
        assert session is not None, "a parallel write killed this session"
        assert session.last_seen_ms > last_seen
        last_seen = session.last_seen_ms
    return credential.session_id, last_seen


def test_parallel_touches_of_one_keys_sessions_all_survive(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """5 sessions of one key refreshed in parallel by 5 processes, while a sixth logs in
    more sessions of the same key: no refresh, and no session, is lost."""
    manager = new_manager(redis_url, max_sessions=100_000)
    pairs = [manager.create(KEY) for _ in range(5)]
    rounds = 60 * SCALE
    barrier = FORK.Barrier(6)
    arguments: list[tuple[Any, ...]] = [
        (redis_url, barrier, credential.encode(), rounds, 0) for _, credential in pairs
    ]
    results = run_workers(
        touch_or_login_worker, [(False, *a) for a in arguments] + [(True, redis_url, barrier)]
    )
    touched = dict(r for r in results if isinstance(r, tuple))
    logged_in = next(r for r in results if isinstance(r, list))
    assert set(touched) == {s.id for s, _ in pairs}
    sessions = {s.id: s for s in manager.sessions(KEY)}
    assert set(sessions) == set(touched) | set(logged_in), "a session was lost"
    for session_id, last_seen in touched.items():
        assert sessions[session_id].last_seen_ms == last_seen, "a refresh was lost"
    assert_no_half_state(redis_client, manager, KEY)


def touch_or_login_worker(login: bool, *arguments: Any) -> Any:
    if not login:
        return toucher_worker(*arguments)
    url, barrier = arguments
    manager = new_manager(url, max_sessions=100_000)
    manager.sessions(KEY)
    barrier.wait(timeout=60)
    return [manager.create(KEY)[0].id for _ in range(60 * SCALE)]

"""Revocations racing other processes (see test_races_logins.py for the races these are):
revoke_all against a stream of logins, a slow request refreshing last_seen while its
session is revoked, refreshes from many processes while an operator revokes."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import redis
from pyramid.interfaces import ISecurityPolicy
from webob import Request

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.credentials import Credential

from ...app import make_wsgi_app
from ..helpers import now_ms
from .races import (
    FORK,
    KEY,
    PROCESSES,
    SCALE,
    Login,
    Workers,
    assert_no_half_state,
    hash_fields,
    new_manager,
    results_beside,
    run_threads,
    timed_login,
)

pytestmark = pytest.mark.usefixtures("redis_client")  # a flushed database per test


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


class StreamOperator:
    """An operator who calls revoke_all ``8 * SCALE`` times while the workers log in, each
    call with logins in flight around it, then sets ``stop``. ``revokes`` holds each
    call's (called, returned) monotonic times and how many sessions it ended."""

    def __init__(self, url: str, barrier: Any, stop: Any, made: Any) -> None:
        self.url, self.barrier, self.stop, self.made = url, barrier, stop, made
        self.revokes: list[tuple[float, float, int]] = []

    def logins_since(self, count: int, more: int) -> None:
        # However slow the machine, each revoke_all has logins in flight around it.
        ends = time.monotonic() + 60
        while self.made.value < count + more and time.monotonic() < ends:
            time.sleep(0.005)

    def run(self) -> None:
        manager = new_manager(self.url, max_sessions=100_000)
        manager.sessions(KEY)
        self.barrier.wait(timeout=60)
        try:
            for _ in range(8 * SCALE):
                before = self.made.value
                time.sleep(0.08)
                self.logins_since(before, 15)
                called = time.monotonic()
                ended = manager.revoke_all(KEY)
                self.revokes.append((called, time.monotonic(), ended))
            self.logins_since(self.made.value, 15)
        finally:
            self.stop.set()


def test_revoke_all_racing_a_stream_of_logins(redis_url: str, redis_client: redis.Redis) -> None:
    barrier = FORK.Barrier(PROCESSES + 1)
    stop = FORK.Event()
    made = FORK.Value("i", 0)  # logins returned so far, in all workers
    operator = StreamOperator(redis_url, barrier, stop, made)
    workers = Workers(streaming_login_worker, [(redis_url, barrier, stop, 4, made)] * PROCESSES)
    per_worker = results_beside(workers, operator.run, stop)
    logins = [login for worker in per_worker for login in worker]
    revokes = operator.revokes
    assert len(revokes) == 8 * SCALE
    assert len(logins) > 10 * len(revokes), "too few logins raced the revocations"
    manager = new_manager(redis_url, max_sessions=100_000)
    assert_each_revoke_all_held(redis_client, manager, logins, revokes)


def assert_each_revoke_all_held(
    client: redis.Redis,
    manager: SessionManager,
    logins: list[Login],
    revokes: list[tuple[float, float, int]],
) -> None:
    """What the stream of logins left, against the revoke_all calls that raced it."""
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
    assert_no_half_state(client, manager, KEY)


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
    results = results_beside(workers, operator, stop)
    assert sum(verified for verified, _ in results) > len(pairs), "the refreshes did not run"
    stored = hash_fields(redis_client, KEY)
    resurrections += [sid for sid in revoked_at if sid in stored]
    assert not resurrections, f"{len(resurrections)} revoked sessions came back"
    survivors = {s.id for s, _ in pairs} - set(revoked_at)
    assert set(stored) == survivors, "a refresh lost a session that was never revoked"
    assert_no_half_state(redis_client, manager, KEY)

"""Parallel refreshes of one key's sessions from several processes, while another logs
in more (see test_races_logins.py for the races these are)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from pyramid_jeff.credentials import Credential

from ..helpers import now_ms
from .races import FORK, KEY, SCALE, assert_no_half_state, new_manager, run_workers

pytestmark = pytest.mark.usefixtures("redis_client")  # a flushed database per test


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

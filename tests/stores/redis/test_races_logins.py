"""The store invariants of docs/security.md ("The design in five lines") under real
concurrency: several worker *processes* (each with its own connection pool and threads)
against one real Redis.

These are the races other session libraries lost:

- jeff's README admits that its read-modify-write of a key's session list loses
  sessions created concurrently and can let a cleared session survive;
- flask-session #71 and connect-redis #346: concurrent requests overwrite each other's
  writes, so data (here: sessions, last_seen refreshes) silently disappears;
- gorilla/sessions #10 (and connect-redis #328): a slow request saves its session after
  a logout deleted it, and the session comes back to life.

Here: 4 processes x 100 concurrent logins. Revocations racing logins and refreshes are in
test_races_revocations.py, parallel refreshes of one key in test_races_touches.py; the
workers and the sizes (``JEFF_RACE_SCALE``) in races.py.
"""

from __future__ import annotations

import pytest
import redis

from pyramid_jeff.credentials import Credential
from pyramid_jeff.manager import DEFAULT_MAX_SESSIONS

from .races import KEY, assert_no_half_state, new_manager, storm

pytestmark = pytest.mark.usefixtures("redis_client")  # a flushed database per test


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

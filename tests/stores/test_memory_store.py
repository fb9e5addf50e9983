"""The memory store's sweep: only what is due, a bounded amount per call, never a live session.

Counts, not clocks: how many sessions a write drops or examines, whether memory is freed
while the lock is held. The latency these bounds buy is measured by
``python -m benchmarks.investigations.memory_sweep``.
"""

from __future__ import annotations

import random
import threading

import pytest

from pyramid_jeff import MemoryStore, SessionManager
from pyramid_jeff.session import Session

from ..helpers import Clock

START = 1_800_000_000_000
HOUR = 3600 * 1000
# A write may drop at most this many dead sessions: the store's batch (512 filings and
# sessions examined) holds at most 256 one-session keys.
MOST_DROPPED_PER_WRITE = 512


def session(
    session_id: str, created: int = START, lifetime: int = HOUR, cls: type[Session] = Session
) -> Session:
    return cls(
        key="k",
        id=session_id,
        created_ms=created,
        last_seen_ms=created,
        expires_ms=created + lifetime,
    )


def fill(store: MemoryStore, keys: int, lifetime: int = HOUR, idle_ms: int = 0) -> None:
    for number in range(keys):
        store.create(
            f"key{number}",
            session("s", lifetime=lifetime),
            max_sessions=32,
            now_ms=START,
            idle_timeout_ms=idle_ms,
        )


def write(store: MemoryStore, now: int, name: str, idle_ms: int = 0) -> None:
    """One login of a new key: what triggers a sweep step."""
    store.create(
        name, session("s", created=now), max_sessions=32, now_ms=now, idle_timeout_ms=idle_ms
    )


def stored(store: MemoryStore) -> int:
    return sum(len(sessions) for sessions in store._sessions.values())


def test_a_sweep_with_nothing_due_examines_nothing() -> None:
    store = MemoryStore()
    fill(store, 5000)
    for minute in range(1, 59):  # every sweep interval of the old design passes
        write(store, START + minute * 60_000, f"new{minute}")
    assert getattr(store, "examined", None) == 0
    assert stored(store) == 5000 + 58


def test_a_mass_expiry_is_swept_in_bounded_steps() -> None:
    store = MemoryStore()
    fill(store, 5000)
    now = START + HOUR + 1000
    write(store, now, "first")
    assert stored(store) >= 5000 + 1 - MOST_DROPPED_PER_WRITE, "one write swept everything"
    writes = 1
    while stored(store) > writes:
        before = stored(store)
        write(store, now, f"new{writes}")
        writes += 1
        assert before + 1 - stored(store) <= MOST_DROPPED_PER_WRITE
        assert writes <= 5000 // 100, "the sweep does not make progress"
    assert stored(store) == writes  # only the new logins are left
    assert store.swept == 5000


@pytest.mark.parametrize("writer_idle_seconds", [0, 600])
def test_sessions_dead_of_idleness_are_dropped(writer_idle_seconds: int) -> None:
    """Whatever idle timeout the write that sweeps was made with, each key is swept
    with the one its own sessions were created with."""
    clock = Clock(START)
    store = MemoryStore()
    manager = SessionManager(store, idle_timeout=600, clock=clock)
    idle_ms = writer_idle_seconds * 1000
    _, idle = manager.create("idle@example.com")
    _, active = manager.create("active@example.com")
    for _ in range(8):  # 40 minutes: the idle one is dead, the active one is refreshed
        clock.advance(300)
        assert manager.verify(active) is not None
        store.create(
            "other",
            session(f"o{clock.now}", created=clock.now),
            max_sessions=32,
            now_ms=clock.now,
            idle_timeout_ms=idle_ms,
        )
    assert manager.verify(idle) is None
    assert store.get(idle.key_digest, idle.session_id) is None, "kept an idle-dead session"
    assert store.get(active.key_digest, active.session_id) is not None
    assert manager.verify(active) is not None


def test_a_short_session_among_long_ones_is_dropped_when_it_dies() -> None:
    """Sessions of one key may have different lifetimes: expiry is not creation order."""
    store = MemoryStore()
    for number, lifetime in enumerate([10 * HOUR, HOUR, 5 * HOUR]):
        store.create(
            "key",
            session(f"s{number}", created=START + number, lifetime=lifetime),
            max_sessions=32,
            now_ms=START + number,
            idle_timeout_ms=0,
        )
    write(store, START + 2 * HOUR, "later")
    assert sorted(s.id for s in store.list("key")) == ["s0", "s2"]
    write(store, START + 6 * HOUR, "later still")
    assert [s.id for s in store.list("key")] == ["s0"]
    write(store, START + 11 * HOUR, "last")
    assert store.list("key") == []
    assert "key" not in store._sessions


def test_a_sweep_frees_memory_outside_the_lock() -> None:
    store = MemoryStore()
    freed_under_lock: list[bool] = []

    class Probe(Session):
        def __del__(self) -> None:
            freed_under_lock.append(store._lock.locked())

    for number in range(50):
        store.create(
            f"key{number}",
            session("s", cls=Probe),
            max_sessions=32,
            now_ms=START,
            idle_timeout_ms=0,
        )
    write(store, START + HOUR + 1000, "sweeper")
    assert len(freed_under_lock) == 50
    assert not any(freed_under_lock), "dead sessions were deallocated while holding the lock"


def test_logging_in_and_out_does_not_grow_the_schedule() -> None:
    clock = Clock(START)
    store = MemoryStore()
    manager = SessionManager(store, clock=clock)
    for _ in range(10_000):
        _, credential = manager.create("alice@example.com")
        assert manager.end(credential)
        clock.now += 1
    assert len(store._due) == 1
    assert store._filings == 1


def test_due_times_moving_earlier_do_not_pile_up() -> None:
    """Each login dying earlier than the key's others files the key again; the stale
    filings are compacted away, so they stay proportional to the keys."""
    store = MemoryStore()
    for number in range(20_000):
        store.create(
            "key",
            session(f"s{number}", created=START, lifetime=10 * HOUR - number * 1000),
            max_sessions=32,
            now_ms=START,
            idle_timeout_ms=0,
        )
    assert store._filings <= 2 * len(store._due) + 4096
    stored_sessions = store.list("key")
    assert sum(1 for s in stored_sessions if s.ended is None) == 32
    assert len(stored_sessions) == 33  # and the tombstone of the last one evicted


@pytest.mark.parametrize("idle_ms", [0, 5000])
def test_random_operations_never_lose_a_live_session(idle_ms: int) -> None:
    """A model of the protocol: whatever the sweep does, every live session is kept
    exactly, and the answers are the ones the model gives."""
    rng = random.Random(f"memory-store-{idle_ms}")
    store = MemoryStore()
    model: dict[str, dict[str, Session]] = {}
    now, cap, created = START, 4, 0

    def live(key: str) -> list[Session]:
        return [s for s in model.get(key, {}).values() if s.is_live(now, idle_ms)]

    for _ in range(6000):
        now += rng.choice([0, 1, 10, 400, 1500, 4000])
        key = f"key{rng.randrange(8)}"
        action = rng.random()
        if action < 0.45:
            created += 1
            new = Session(
                key=key,
                id=f"s{created}",
                created_ms=now,
                last_seen_ms=now,
                expires_ms=now + rng.choice([2000, 9000, 30_000]),
            )
            alive = sorted(live(key), key=lambda s: (s.created_ms, s.id))
            expected = [v.id for v in alive[: max(0, len(alive) - cap + 1)]]
            for victim_id in expected:
                del model[key][victim_id]
            assert (
                store.create(key, new, max_sessions=cap, now_ms=now, idle_timeout_ms=idle_ms)
                == expected
            )
            model.setdefault(key, {})[new.id] = new
        elif action < 0.75 and live(key):
            target = rng.choice(live(key))
            interval = rng.choice([0, 500])
            assert store.touch(key, target.id, now, min_interval_ms=interval)
            if now >= target.last_seen_ms + max(interval, 1):
                model[key][target.id] = target.seen_at(now)
        elif action < 0.9 and model.get(key):
            target = rng.choice(list(model[key].values()))
            was_live = target.is_live(now, idle_ms)
            assert store.revoke(key, target.id, now_ms=now, idle_timeout_ms=idle_ms) == was_live
            del model[key][target.id]
        elif action < 0.95:
            keep = rng.choice([None, *model.get(key, {})])
            ended = sorted(s.id for s in live(key) if s.id != keep)
            assert (
                sorted(store.revoke_all(key, keep=keep, now_ms=now, idle_timeout_ms=idle_ms))
                == ended
            )
            model[key] = {k: s for k, s in model.get(key, {}).items() if k == keep}
        for each_key in model:
            for alive_session in live(each_key):
                assert store.get(each_key, alive_session.id) == alive_session
        assert store.swept <= created
    # Long after everything died, a few writes leave nothing of it behind.
    now += 60_000
    for number in range(3):
        write(store, now, f"late{number}", idle_ms)
    assert stored(store) == 3


def test_concurrent_readers_see_every_live_session_while_sweeps_run() -> None:
    store = MemoryStore()
    fill(store, 3000, lifetime=HOUR)
    long_lived = session("keep", lifetime=100 * HOUR)
    store.create("long", long_lived, max_sessions=32, now_ms=START, idle_timeout_ms=0)
    misses: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            if store.get("long", "keep") is None:
                misses.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for number in range(40):
            write(store, START + 2 * HOUR, f"new{number}")
    finally:
        stop.set()
        thread.join()
    assert not misses
    assert stored(store) == 1 + 40

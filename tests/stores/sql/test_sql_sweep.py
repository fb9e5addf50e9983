"""The SQL store's sweep: exactly the dead, in batches; the automatic sweep after logins;
tombstones and the revoke_everyone cutoff through it. (The SQL store's other tests: see
test_sql_schema.py.)"""

from __future__ import annotations

import sqlalchemy as sa

from pyramid_jeff.credentials import key_digest
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.session import TOMBSTONE_MS
from pyramid_jeff.stores.sql import SQLStore, jeff_sessions

from ..helpers import ALICE, DAY, HOUR, T0, session
from .helpers import Statements, add, bulk_insert, row_count


def test_sweep_deletes_exactly_the_dead_in_batches(store: SQLStore) -> None:
    now, idle = T0 + 2 * HOUR, 30 * 60_000
    expired = [session(f"e{i}@x", created=T0, lifetime=HOUR) for i in range(7_000)]
    idle_dead = [session(f"i{i}@x", created=T0, lifetime=10 * HOUR) for i in range(3_000)]
    live = [
        session(f"l{i}@x", created=T0, lifetime=10 * HOUR, last_seen=now - 60_000)
        for i in range(50)
    ]
    bulk_insert(store, expired + idle_dead + live)
    if store.family == "postgresql":
        # The statistics autovacuum keeps: fresh from a bulk insert there are none, and
        # the planner filters the batch's 1,000 keys over every dead row.
        with store.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE jeff_sessions")
    with Statements(store) as swept:
        assert store.sweep(now, idle, batch=1_000) == 10_000
    deletes = [s for s in swept.sent if s.upper().startswith("DELETE")]
    assert len(deletes) == 10  # 10,000 dead rows, 1,000 a batch
    remaining = {s.id for s in live}
    assert {s.id for s in store.list(key_digest("l0@x"))} == {live[0].id}
    assert store.sweep(now, idle, batch=1_000) == 0
    with store.engine.connect() as connection:
        ids = set(connection.execute(sa.select(store.table.c.session_id)).scalars())
    assert ids == remaining
    # Without an idle timeout only the expired go; max_batches bounds one call.
    more = [session(f"m{i}@x", created=T0, lifetime=HOUR) for i in range(300)]
    bulk_insert(store, more)
    assert store.sweep(now, 0, batch=100, max_batches=2) == 200
    assert store.sweep(now, 0, batch=100) == 100


def test_the_automatic_sweep_deletes_one_batch_per_interval(
    store: SQLStore, raw: sa.Engine
) -> None:
    dead = [session(f"d{i}@x", created=T0 - 2 * HOUR, lifetime=HOUR) for i in range(2_000)]
    bulk_insert(store, dead)
    store.auto_sweep_batch = 500
    store.auto_sweep_interval = 3_600.0

    def login() -> None:
        add(store, session(created=T0))
        if store._sweeper is not None:
            store._sweeper.join(10)

    login()
    assert row_count(raw) == 2_000 - 500 + 1
    login()  # within the interval: no sweep
    assert row_count(raw) == 2_000 - 500 + 2
    store._next_auto_sweep = 0.0  # the interval has passed
    login()
    assert row_count(raw) == 2_000 - 1_000 + 3


def test_the_automatic_sweep_never_judges_idleness(store: SQLStore, sql_url: str) -> None:
    # Two applications share the table: one with a short idle timeout, one without. The
    # first one's logins must not sweep the second one's idle-but-live sessions.
    patient = SessionManager(store, clock=lambda: T0)
    _, kept = patient.create("bob@example.com")
    other = SQLStore.from_url(sql_url)
    try:
        hasty = SessionManager(other, idle_timeout=60, clock=lambda: T0 + 10 * 60_000)
        hasty.create(ALICE)
        if other._sweeper is not None:
            other._sweeper.join(10)
        assert patient.verify(kept) is not None
    finally:
        other.close()


def test_the_cutoff_survives_every_sweep(store: SQLStore, raw: sa.Engine) -> None:
    store.revoke_everyone(now_ms=T0 + 10)
    bulk_insert(store, [session(created=T0, lifetime=HOUR), session(created=T0 + 20)])
    far = 2**62
    assert store.sweep(far, 1) == 2  # every session, by expiry and by idleness
    assert row_count(raw) == 1
    # An operator's own DELETE of expired rows spares it too.
    with raw.begin() as connection:
        connection.execute(sa.delete(jeff_sessions).where(jeff_sessions.c.expires_ms <= far))
    assert store.stats()["revoked_everyone_before_ms"] == T0 + 10
    older = session(created=T0 + 5)
    bulk_insert(store, [older])
    got = store.get(key_digest(ALICE), older.id)
    assert got is not None and got.ended == "revoked"
    assert store.list(key_digest(ALICE)) == [got]  # the cutoff's row is no session of a key


def test_a_tombstone_is_swept_at_its_own_expiry_never_for_idleness(store: SQLStore) -> None:
    digest = key_digest(ALICE)
    old, new = session(created=T0, lifetime=30 * DAY), session(created=T0 + 1)
    add(store, old, max_sessions=1)
    assert add(store, new, max_sessions=1, now=T0 + 1) == [old.id]
    idle = 60_000
    # Two hours on, `new` is idle-dead and goes; the tombstone (as idle) stays.
    assert store.sweep(T0 + 2 * HOUR, idle) == 1
    stone = store.get(digest, old.id)
    assert stone is not None and stone.ended == "evicted"
    assert stone.expires_ms == T0 + 1 + TOMBSTONE_MS
    assert store.sweep(T0 + TOMBSTONE_MS, idle) == 0
    assert store.sweep(T0 + 1 + TOMBSTONE_MS, idle) == 1
    assert store.list(digest) == []

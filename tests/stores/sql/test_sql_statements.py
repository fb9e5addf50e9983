"""The statements each operation of the SQL store sends (one SELECT per verify, one
UPDATE per touch, one short transaction per login, ...), on SQLite, PostgreSQL and
MariaDB. (The SQL store's other tests: see test_sql_schema.py.)"""

from __future__ import annotations

from pyramid_jeff.credentials import key_digest, new_session_id
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.session import TOMBSTONE_MS
from pyramid_jeff.stores.sql import SQLStore

from ..helpers import ALICE, HOUR, T0, session
from .helpers import Statements, add, bulk_insert, live_ids


def test_verify_is_one_select_whatever_the_sessions_of_the_key(store: SQLStore) -> None:
    many = [session(created=T0 + i) for i in range(1000)]
    bulk_insert(store, many)
    manager = SessionManager(store, max_sessions=1001, clock=lambda: T0 + 1000)
    credential = manager.create(ALICE)[1]
    with Statements(store) as verify:
        assert manager.verify(credential) is not None
        assert store.get(key_digest(ALICE), many[0].id) == many[0]
        assert store.get(key_digest(ALICE), many[-1].id) == many[-1]
    assert verify.verbs() == ["SELECT"] * 3
    assert all("WHERE" in s and "key_digest" in s and "session_id" in s for s in verify.sent)


def test_touch_is_one_update(store: SQLStore, sql_kind: str) -> None:
    s = session()
    add(store, s)
    digest = key_digest(ALICE)
    with Statements(store) as due:
        assert store.touch(digest, s.id, T0 + 60_000, min_interval_ms=60_000)
    assert len(due.sent) == 1
    # PostgreSQL: the UPDATE inside one WITH statement; elsewhere a plain UPDATE.
    assert due.verbs() == ["WITH" if sql_kind == "postgresql" else "UPDATE"]
    assert "UPDATE" in due.sent[0].upper()
    with Statements(store) as early:  # too recent: nothing written, still "exists"
        assert store.touch(digest, s.id, T0 + 60_001, min_interval_ms=60_000)
    got = store.get(digest, s.id)
    assert got is not None and got.last_seen_ms == T0 + 60_000
    with Statements(store) as gone:
        assert not store.touch(digest, new_session_id(), T0 + 120_000, min_interval_ms=0)
    if sql_kind == "sqlite":  # the conditional UPDATE, then a SELECT only when it wrote nothing
        assert early.verbs() == gone.verbs() == ["UPDATE", "SELECT"]
    else:  # MariaDB reports matched rows (CLIENT.FOUND_ROWS); PostgreSQL's WITH tells both
        assert len(early.sent) == len(gone.sent) == 1


def test_a_login_is_one_short_transaction(store: SQLStore, sql_kind: str) -> None:
    first, second = session(), session(created=T0 + 1)
    add(store, first, max_sessions=2)
    with Statements(store) as login:
        add(store, second, max_sessions=2)
    sent = login.sent
    if sql_kind == "mariadb":  # a named lock per key around the transaction
        assert "get_lock" in sent[0].lower() and "release_lock" in sent[-1].lower()
        sent = sent[1:-1]
    begin = {"sqlite": "BEGIN IMMEDIATE", "mariadb": "START TRANSACTION"}.get(sql_kind, "BEGIN")
    assert sent[0] == begin
    assert sent[-1] == "COMMIT"
    assert login.verbs().count("COMMIT") == 1
    middle = [s.split()[0] for s in sent[1:-1]]
    expected = ["SELECT", "SELECT", "INSERT"] if sql_kind == "postgresql" else ["SELECT", "INSERT"]
    assert middle == expected
    if sql_kind == "postgresql":
        assert "pg_advisory_xact_lock" in sent[1]
    if sql_kind != "sqlite":
        assert sent[-3].endswith("FOR UPDATE")
    # At the cap: one UPDATE makes the oldest an "evicted" tombstone, in the transaction.
    with Statements(store) as at_cap:
        assert add(store, session(created=T0 + 2), max_sessions=2) == [first.id]
    verbs = [v for v in at_cap.verbs() if v != "SELECT"]
    assert verbs[-3:] == ["UPDATE", "INSERT", "COMMIT"]
    assert at_cap.verbs().count("COMMIT") == 1
    evicted = store.get(key_digest(ALICE), first.id)
    assert evicted is not None and evicted.ended == "evicted"
    assert evicted.expires_ms == min(first.expires_ms, T0 + TOMBSTONE_MS)
    # Next time, the tombstone is deleted to make room and the oldest live one evicted:
    # one DELETE and one UPDATE, still in the one transaction.
    with Statements(store) as again:
        assert add(store, session(created=T0 + 3), max_sessions=2, now=T0 + 3) == [second.id]
    verbs = [v for v in again.verbs() if v != "SELECT"]
    assert verbs[-4:] == ["DELETE", "UPDATE", "INSERT", "COMMIT"]
    assert store.get(key_digest(ALICE), first.id) is None
    assert len(live_ids(store)) == 2


def test_logout_is_one_delete_and_revoke_all_one_statement_or_transaction(
    store: SQLStore, sql_kind: str
) -> None:
    sessions = [session(created=T0 + i) for i in range(4)]
    for s in sessions:
        add(store, s)
    dead = session(created=T0 - 2 * HOUR, lifetime=HOUR)
    add(store, dead)
    digest = key_digest(ALICE)
    with Statements(store) as logout:
        assert store.revoke(
            digest,
            sessions[0].id,
            now_ms=T0,
            idle_timeout_ms=0,
            token_digest=sessions[0].token_digest,
        )
    assert logout.verbs() == ["DELETE"]
    assert "RETURNING" in logout.sent[0]
    with Statements(store) as operator:
        assert store.revoke(digest, sessions[3].id, now_ms=T0, idle_timeout_ms=0, tombstone=True)
    assert operator.verbs() == ["UPDATE"]
    with Statements(store) as everyone:
        ended = store.revoke_all(
            digest, keep=sessions[1].id, now_ms=T0, idle_timeout_ms=0, key=ALICE
        )
    assert ended == [sessions[2].id]  # the tombstone made before is not live
    expected = {
        # The DELETE of the dead as a WITH clause of the UPDATE that makes tombstones.
        "postgresql": ["WITH"],
        "sqlite": ["BEGIN", "DELETE", "UPDATE", "COMMIT"],
        # No UPDATE ... RETURNING: the rows are read FOR UPDATE first.
        "mariadb": ["START", "SELECT", "DELETE", "UPDATE", "COMMIT"],
    }[sql_kind]
    assert everyone.verbs() == expected
    if sql_kind == "postgresql":
        assert "DELETE" in everyone.sent[0] and "RETURNING" in everyone.sent[0]
    stored = {s.id: s.ended for s in store.list(digest)}
    assert stored == {sessions[1].id: None, sessions[2].id: "revoked", sessions[3].id: "revoked"}


def test_stats_are_one_statement(store: SQLStore, sql_kind: str) -> None:
    empty = {
        "backend": "sql",
        "dialect": sql_kind,
        "table": "jeff_sessions",
        "records": 0,
        "tombstones": 0,
    }
    assert store.stats() == empty
    made = [session(created=T0 + i) for i in range(3)]
    for s in made:
        add(store, s, max_sessions=2)  # the third evicts the first
    bob = session("bob@example.com")
    add(store, bob)
    store.revoke(key_digest(bob.key), bob.id, now_ms=T0, idle_timeout_ms=0)  # a logout
    store.revoke_everyone(now_ms=T0 + 5)
    with Statements(store) as counted:
        facts = store.stats()
    assert counted.verbs() == ["SELECT"]
    assert facts == {**empty, "records": 3, "tombstones": 1, "revoked_everyone_before_ms": T0 + 5}

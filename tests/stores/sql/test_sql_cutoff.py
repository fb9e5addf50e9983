"""The revoke_everyone cutoff in SQL: read inside each operation's one statement, kept as
one row whatever the calls, seen by every operation. (The SQL store's other tests: see
test_sql_schema.py.)"""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from pyramid_jeff.credentials import Credential, key_digest, new_token, token_digest
from pyramid_jeff.manager import SessionManager
from pyramid_jeff.stores.sql import SQLStore

from ..helpers import ALICE, DAY, HOUR, T0, session
from .helpers import Statements, add, bulk_insert, row_count


def test_verify_reads_the_cutoff_in_its_one_select(store: SQLStore) -> None:
    digest = key_digest(ALICE)
    before = session(created=T0)
    add(store, before)
    store.revoke_everyone(now_ms=T0 + 10)
    after = session(created=T0 + 20)
    add(store, after, now=T0 + 20)
    with Statements(store) as verify:
        stone = store.get(digest, before.id)
        assert stone == before.tombstone("revoked", T0 + 10)
        assert stone is not None and stone.ended == "revoked"
        assert store.get(digest, after.id) == after
    assert verify.verbs() == ["SELECT", "SELECT"]
    assert all("everyone" in sent for sent in verify.sent)  # the cutoff, read inside
    # The manager tells the revoked one from the live one, from that one read each.
    early = SessionManager(store, clock=lambda: T0 + 30)
    token = new_token()
    logged_in_before = replace(session(created=T0 + 5), token_digest=token_digest(token))
    bulk_insert(store, [logged_in_before])  # e.g. a login of a server whose clock is behind
    assert early.verify(Credential(digest, logged_in_before.id, token)) is None


def test_every_operation_sees_the_cutoff(store: SQLStore) -> None:
    digest = key_digest(ALICE)
    old = [session(created=T0 + i, lifetime=DAY) for i in range(4)]
    for s in old:
        add(store, s)
    store.revoke_everyone(now_ms=T0 + 10)
    now = T0 + 20
    assert not store.touch(digest, old[0].id, now + HOUR, min_interval_ms=0)
    stone = store.get(digest, old[0].id)
    assert stone is not None and stone.last_seen_ms == old[0].last_seen_ms  # not written
    assert not store.revoke(digest, old[0].id, now_ms=now, idle_timeout_ms=0, tombstone=True)
    assert store.get(digest, old[0].id) == stone  # no tombstone of its own: unchanged
    # A logout of a revoked session ended nothing live, and deletes it all the same.
    assert not store.revoke(
        digest, old[1].id, now_ms=now, idle_timeout_ms=0, token_digest=old[1].token_digest
    )
    assert store.get(digest, old[1].id) is None
    # revoke_all ends nothing, and keeps what the cutoff ended (they read as tombstones).
    assert store.revoke_all(digest, keep=None, now_ms=now, idle_timeout_ms=0) == []
    assert {s.id: s.ended for s in store.list(digest)} == {
        old[0].id: "revoked",
        old[2].id: "revoked",
        old[3].id: "revoked",
    }
    # A login at the cap counts none of them live: they make room, nobody is evicted.
    new = session(created=now)
    assert add(store, new, max_sessions=2, now=now) == []
    assert {s.id for s in store.list(digest)} == {new.id}
    assert store.touch(digest, new.id, now + 60_000, min_interval_ms=0)


def test_revoke_everyone_is_one_upsert_that_keeps_the_later_cutoff(
    store: SQLStore, raw: sa.Engine
) -> None:
    add(store, session())
    with Statements(store) as cut:
        store.revoke_everyone(now_ms=T0 + 10)
    assert cut.verbs() == ["INSERT"]
    for now, kept in ((T0 + 5, T0 + 10), (T0 + 20, T0 + 20), (T0 + 15, T0 + 20)):
        with Statements(store) as again:
            store.revoke_everyone(now_ms=now)
        assert again.verbs() == ["INSERT"]
        assert store.stats()["revoked_everyone_before_ms"] == kept
    assert row_count(raw) == 2  # one session, one cutoff: however many calls
    # Another store object (another process) reads the same cutoff.
    other = SQLStore(raw)
    try:
        assert other.stats()["revoked_everyone_before_ms"] == T0 + 20
        late = session(created=T0 + 20)  # created at the cutoff: ended too
        bulk_insert(other, [late])
        got = other.get(key_digest(ALICE), late.id)
        assert got is not None and got.ended == "revoked"
    finally:
        other.close()

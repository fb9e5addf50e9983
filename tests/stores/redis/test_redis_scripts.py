"""The Redis store's scripts by the caller's clock: one round trip per read with the
revoke_everyone cutoff, tombstones rewritten in Lua, the cutoff's sorted set, a refused
login, the sweep and stats. (The Redis store's other tests: see test_redis_app.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from pyramid_jeff import RedisStore
from pyramid_jeff.credentials import key_digest
from pyramid_jeff.errors import TooManySessions
from pyramid_jeff.session import TOMBSTONE_MS, pack_meta, pack_record

from ...slow_proxy import SlowProxy
from ..helpers import ALICE, BOB, DAY, MINUTE, T0, add
from .helpers import Commands, make_session, raw_record

pytestmark = pytest.mark.usefixtures("redis_client")


def test_verify_is_one_round_trip_and_reads_the_cutoff(
    store: RedisStore, slow_proxy: SlowProxy
) -> None:
    s = make_session(created=T0)
    add(store, s)
    digest = key_digest(ALICE)
    proxied = RedisStore.from_url(slow_proxy.url())
    try:
        assert proxied.get(digest, s.id) == s
        (connection,) = slow_proxy.connections
        # HGET and the cutoff's ZSCORE, written together: one round trip.
        assert connection.commands() == ["HGET", "ZSCORE"]
        assert connection.bursts == 1
        store.revoke_everyone(now_ms=T0)
        ended = proxied.get(digest, s.id)
        assert ended == s.tombstone("revoked", T0)
        assert proxied.list(digest) == [ended]
        assert connection.commands()[2:] == ["HGET", "ZSCORE", "HGETALL", "ZSCORE"]
        assert connection.bursts == 3
    finally:
        proxied.close()


def test_a_tombstone_is_the_record_rewritten_in_lua_with_its_reason(
    store: RedisStore, redis_client: Any
) -> None:
    """cmsgpack decodes and re-encodes the array: every item must come back as it was,
    the meta string untouched, and the reason added as a tenth item."""
    digest = key_digest(ALICE)
    meta = {"f": 1.0, "i": 2, "b": b"\x00\xc4bin", "nested": {"k": [1, 2.5]}, 7: "int key"}
    old = make_session(
        created=T0,
        lifetime=30 * DAY,
        ip="203.0.113.9",
        user_agent="Agent/1 \u00e9",
        packed_meta=pack_meta(meta),
    )
    add(store, old, max_sessions=1)
    written = raw_record(redis_client, store, old)
    assert len(written) == 9
    new = make_session(created=T0 + 1, lifetime=30 * DAY)
    assert add(store, new, max_sessions=1) == [old.id]
    evicted = raw_record(redis_client, store, old)
    assert evicted == [*written[:3], T0 + 1 + TOMBSTONE_MS, *written[4:], b"evicted"]
    stone = store.get(digest, old.id)
    assert stone == old.tombstone("evicted", T0 + 1)
    assert stone is not None and stone.meta == meta and stone.token_digest == old.token_digest

    # An operator's revocation: the same rewrite, another reason.
    written = raw_record(redis_client, store, new)
    assert store.revoke(digest, new.id, now_ms=T0 + 3, idle_timeout_ms=0, tombstone=True)
    revoked = raw_record(redis_client, store, new)
    assert revoked == [*written[:3], T0 + 3 + TOMBSTONE_MS, *written[4:], b"revoked"]
    # A tombstone is never refreshed nor rewritten again, by any script.
    with Commands(redis_client) as after:
        assert not store.touch(digest, new.id, T0 + 10 * MINUTE)
        assert not store.revoke(digest, old.id, now_ms=T0 + 4, idle_timeout_ms=0, tombstone=True)
        assert store.revoke_all(digest, keep=None, now_ms=T0 + 5, idle_timeout_ms=0) == []
    assert "hset" not in after.counts and "hdel" not in after.counts
    assert {s.id: s.ended for s in store.list(digest)} == {old.id: "evicted", new.id: "revoked"}


def test_revoke_everyone_is_one_sorted_set_that_only_moves_forward(
    store: RedisStore, redis_client: Any
) -> None:
    before, after = make_session(created=T0), make_session(BOB, created=T0 + 10)
    add(store, before)
    add(store, after)
    with Commands(redis_client) as everyone:
        store.revoke_everyone(now_ms=T0 + 5)
    assert everyone.counts == {"zadd": 1}
    assert redis_client.type("jeff:everyone") == b"zset"
    assert redis_client.zrange("jeff:everyone", 0, -1, withscores=True) == [(b"at", T0 + 5)]
    store.revoke_everyone(now_ms=T0)  # an earlier clock changes nothing
    assert redis_client.zscore("jeff:everyone", "at") == T0 + 5
    store.revoke_everyone(now_ms=T0 + 7)
    assert redis_client.zscore("jeff:everyone", "at") == T0 + 7
    alice, bob = key_digest(ALICE), key_digest(BOB)
    assert store.get(alice, before.id) == before.tombstone("revoked", T0 + 7)
    assert store.get(bob, after.id) == after
    # The scripts read the cutoff too: no refresh for the ended session, and it counts
    # as dead, so a full key drops it instead of evicting a live one.
    assert not store.touch(alice, before.id, T0 + 10 * MINUTE)
    assert store.touch(bob, after.id, T0 + 10 * MINUTE)
    newcomer = make_session(created=T0 + 20)
    assert add(store, newcomer, max_sessions=1) == []
    assert store.get(alice, before.id) is None
    assert store.get(alice, newcomer.id) == newcomer


def test_revoke_everyone_ends_only_the_sessions_of_its_prefix(
    redis_url: str, redis_client: Any
) -> None:
    ours, theirs = (RedisStore.from_url(redis_url, key_prefix=p) for p in ("ours:", "theirs:"))
    try:
        s = make_session(created=T0)
        add(ours, s)
        add(theirs, s)
        ours.revoke_everyone(now_ms=T0)
        assert redis_client.zscore("ours:everyone", "at") == T0
        assert ours.get(key_digest(ALICE), s.id) == s.tombstone("revoked", T0)
        assert theirs.get(key_digest(ALICE), s.id) == s
    finally:
        ours.close()
        theirs.close()


def test_a_refused_login_writes_nothing(store: RedisStore, redis_client: Any) -> None:
    digest = key_digest(ALICE)
    hash_key = store.hash_key(digest)
    expired = make_session(created=T0, lifetime=1_000)
    live = [make_session(created=T0 + i, lifetime=30 * DAY) for i in (1, 2)]
    for s in (*live, expired):
        add(store, s, now=T0 + 2)
    stored, ttl = redis_client.hgetall(hash_key), redis_client.pttl(hash_key)
    refused = make_session(created=T0 + 5_000)
    with Commands(redis_client) as refusal, pytest.raises(TooManySessions):
        add(store, refused, max_sessions=2, evict=False)
    # Not even the dead session was pruned: the script wrote nothing at all.
    assert not {"hset", "hdel", "pexpire"} & set(refusal.counts)
    assert redis_client.hgetall(hash_key) == stored
    assert redis_client.pttl(hash_key) <= ttl
    # The same login with eviction: the dead one goes, the oldest live one is a tombstone.
    assert add(store, refused, max_sessions=2) == [live[0].id]
    assert {s.id: s.ended for s in store.list(digest)} == {
        live[0].id: "evicted",
        live[1].id: None,
        refused.id: None,
    }


def test_sweep_drops_the_dead_of_every_key_and_keeps_the_rest(
    redis_url: str, store: RedisStore, redis_client: Any
) -> None:
    idle = 5 * MINUTE
    born, now = T0 + DAY, T0 + 8 * DAY
    store.revoke_everyone(now_ms=T0)
    live_ids = {}
    for i in range(250):  # more hashes than one SCAN page
        key = f"user{i}@example.com"
        live = make_session(key, created=born, lifetime=30 * DAY, last_seen=now - 1_000)
        add(store, live, now=born)
        add(store, make_session(key, created=born, lifetime=1_000), now=born)
        live_ids[key] = live.id
    # Alice's records, written as they would be found.
    hash_key = store.hash_key(key_digest(ALICE))
    records = {
        "live": make_session(created=born, lifetime=30 * DAY, last_seen=now - 1_000),
        "cut": make_session(created=T0 - 10, lifetime=30 * DAY),  # ended by the cutoff
        "idle": make_session(created=born, lifetime=30 * DAY),
        "fresh stone": make_session(created=born, lifetime=30 * DAY).tombstone(
            "evicted", now - 1_000
        ),
        "old stone": make_session(created=born, lifetime=30 * DAY).tombstone("revoked", born),
    }
    for s in records.values():
        redis_client.hset(hash_key, s.id, pack_record(s))
    redis_client.hset(hash_key, "foreign", b"\xc1")
    redis_client.set("jeff:{not a hash}", "kept")  # under the prefix, but no session hash
    other = RedisStore.from_url(redis_url, key_prefix="other:")
    glob = RedisStore.from_url(redis_url, key_prefix="j*:")  # a pattern that would match ours
    try:
        add(other, make_session(created=born, lifetime=1_000), now=born)

        def stored() -> int:
            hashes = [k for k in redis_client.keys("jeff:{*}") if k != b"jeff:{not a hash}"]
            return sum(redis_client.hlen(k) for k in hashes)

        fields = stored()
        assert glob.sweep(now, idle) == 0
        # A day in: the dead by then are the unreadable record only. The session ended
        # by the cutoff is kept as a tombstone written at the cutoff.
        assert store.sweep(born, idle) == 1
        assert not redis_client.hexists(hash_key, "foreign")
        assert store.sweep(now, idle) == 250 + 3
        assert store.sweep(now, idle) == 0
        assert stored() == fields - 254
        for key, session_id in live_ids.items():
            assert [s.id for s in store.list(key_digest(key))] == [session_id]
        kept = {s.id for s in store.list(key_digest(ALICE))}
        assert kept == {records["live"].id, records["fresh stone"].id}
        assert redis_client.get("jeff:{not a hash}") == b"kept"
        assert len(other.list(key_digest(ALICE))) == 1  # another prefix: not ours to sweep
    finally:
        other.close()
        glob.close()


def test_stats_are_cheap_facts(redis_url: str, store: RedisStore, redis_client: Any) -> None:
    for i in range(3):
        add(store, make_session(f"user{i}@example.com", created=T0))
    add(store, make_session("user0@example.com", created=T0 + 1))
    redis_client.set("unrelated", "1")
    other = RedisStore.from_url(redis_url, key_prefix="other:")
    try:
        add(other, make_session(created=T0))
    finally:
        other.close()
    stats = store.stats()
    assert stats == {
        "backend": "redis",
        "redis_version": redis_client.info("server")["redis_version"],
        "used_memory": stats["used_memory"],
        "keys": 3,
        "records": 4,
    }
    assert isinstance(stats["used_memory"], int) and stats["used_memory"] > 0
    store.revoke_everyone(now_ms=T0 + 5)
    assert store.stats()["revoked_everyone_before_ms"] == T0 + 5

"""The Redis store against a real redis-server, through the application: one hash per
key, no token in a dump, the commands of each request, meta kept by a refresh, foreign
records, a script's manager.

The Redis store's other tests: threads at once (test_redis_concurrency.py), the store's
scripts by the caller's clock (test_redis_scripts.py), outages of one request
(test_redis_outages.py) and under load (test_outages_under_load.py), races of processes
(test_races_*.py), Redis Cluster (test_redis_cluster.py). The rules every store shares
are in tests/stores/test_contract_*.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyramid.interfaces import ISecurityPolicy

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.credentials import key_digest

from ...conftest import JeffTestApp
from ...helpers import Clock, cookie_value, fresh_client, set_cookies
from .helpers import Commands

pytestmark = pytest.mark.usefixtures("redis_client")


def test_layout_one_hash_per_key_with_a_hash_tag(app: JeffTestApp, redis_client: Any) -> None:
    key = "user::{weird}*[key]?"
    value = cookie_value(set_cookies(app.login(key))[0])
    fresh_client(app).login(key)
    (name,) = redis_client.keys("*")
    assert name == f"jeff:{{{key_digest(key)}}}".encode()
    assert redis_client.type(name) == b"hash"
    assert redis_client.hlen(name) == 2
    assert value.split(".")[1].encode() in redis_client.hkeys(name)
    # The backstop TTL covers the whole absolute lifetime.
    assert 2591990_000 < redis_client.pttl(name) <= 2592000_000


def test_no_token_in_a_redis_dump(app: JeffTestApp, redis_client: Any) -> None:
    values = [cookie_value(set_cookies(fresh_client(app).login("bob@example.com"))[0])]
    values.append(cookie_value(set_cookies(fresh_client(app).login("eve@example.com"))[0]))
    dump = b"".join(
        name + field + data
        for name in redis_client.keys("*")
        for field, data in redis_client.hgetall(name).items()
    )
    import base64

    for value in values:  # the dump does hold both sessions: their ids are there
        assert value.split(".")[1].encode() in dump
        token = value.split(".")[2]
        assert token.encode() not in dump
        assert base64.urlsafe_b64decode(token + "=") not in dump
    assert b"bob@example.com" not in b"".join(redis_client.keys("*"))


def test_store_commands_per_request(app: JeffTestApp, redis_client: Any) -> None:
    """INFO commandstats per request. It also counts the commands a Lua script runs
    inside Redis, so a login reads as one EVALSHA (the only round trip) plus the
    commands of its script. Each script and each read also reads the cutoff of
    revoke_everyone (ZSCORE); a read sends it in the same round trip as its HGET (see
    test_verify_is_one_round_trip_and_reads_the_cutoff)."""
    clock = Clock()
    app.manager.clock = clock
    app.manager.store.load_scripts()  # type: ignore[attr-defined]  # and open the connection
    anonymous = fresh_client(app)
    with Commands(redis_client) as anon:
        anonymous.get("/public")
        anonymous.get("/protected", status=303)
    assert anon.total == 0

    with Commands(redis_client) as login:
        app.login("bob@example.com")
    assert login.counts == {
        "evalsha": 1,
        "zscore": 1,
        "hlen": 1,
        "hset": 1,
        "pttl": 1,
        "pexpire": 1,
    }

    with Commands(redis_client) as read:
        for _ in range(10):
            app.get("/protected")
    assert read.counts == {"hget": 10, "zscore": 10}  # one read, no write

    clock.advance(60)
    with Commands(redis_client) as refresh:
        app.get("/protected")
        app.get("/protected")
    # Two reads, and one update-only refresh script (HGET, ZSCORE, HSET inside it).
    assert refresh.counts == {"hget": 3, "zscore": 3, "evalsha": 1, "hset": 1}

    with Commands(redis_client) as relogin:
        app.login("bob@example.com")
    # Two round trips: the login script, then, once the response carries the new
    # cookie, the revoke script that ends the session this browser had.
    assert relogin.counts["evalsha"] == 2
    assert relogin.counts["hdel"] == 1
    assert set(relogin.counts) == {
        "evalsha",
        "zscore",
        "hget",
        "hdel",
        "hlen",
        "hset",
        "pttl",
        "pexpire",
    }

    with Commands(redis_client) as static:
        app.get("/static")
    assert static.total == 0


def test_verify_is_one_read_with_ten_thousand_sessions(redis_url: str, redis_client: Any) -> None:
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=20_000)
    credentials = [manager.create("busy@example.com")[1] for _ in range(10_000)]
    assert redis_client.hlen(store.hash_key(key_digest("busy@example.com"))) == 10_000
    with Commands(redis_client) as verify:
        assert manager.verify(credentials[0]) is not None
        assert manager.verify(credentials[-1]) is not None
    assert verify.counts == {"hget": 2, "zscore": 2}


def test_keys_with_glob_and_brace_characters_stay_apart(app: JeffTestApp) -> None:
    keys = ["*", "a*", "ab", "{ab}", "a{b}", "x:y", "x::y", "[a]"]
    for key in keys:
        fresh_client(app).login(key)
    for key in keys:
        assert [s.key for s in app.manager.sessions(key)] == [key]
    assert app.manager.revoke_all("*") == 1
    assert all(len(app.manager.sessions(k)) == 1 for k in keys if k != "*")


def test_meta_and_details_survive_a_last_seen_refresh(app: JeffTestApp) -> None:
    """The refresh rewrites the record in Lua; msgpack types must not drift."""
    clock = Clock()
    app.manager.clock = clock
    meta = {"f": 1.0, "i": 2, "b": b"\x00\xc4bin", "nested": {"k": [1, 2.5]}, 7: "int key"}
    session, credential = app.manager.create(
        "bob@example.com", meta=meta, ip="203.0.113.9", user_agent="Agent/1 \u00e9"
    )
    clock.advance(61)
    refreshed = app.manager.verify(credential)
    assert refreshed is not None
    assert refreshed.last_seen_ms == clock.now
    (stored,) = app.manager.sessions("bob@example.com")
    assert stored.last_seen_ms == clock.now
    assert stored.meta == meta
    assert isinstance(stored.meta["f"], float)
    assert (stored.ip, stored.user_agent) == ("203.0.113.9", "Agent/1 \u00e9")
    assert (stored.created_ms, stored.expires_ms) == (session.created_ms, session.expires_ms)


def test_a_touch_never_resurrects_a_revoked_session(app: JeffTestApp, redis_client: Any) -> None:
    clock = Clock()
    app.manager.clock = clock
    session, credential = app.manager.create("bob@example.com")
    store = app.manager.store
    real_touch = store.touch

    def touch_after_revoke(*args: Any, **kwargs: Any) -> bool:
        # A slow request: the revoke lands between its read and its refresh.
        app.manager.revoke("bob@example.com", session.id)
        return real_touch(*args, **kwargs)

    store.touch = touch_after_revoke  # type: ignore[method-assign]
    clock.advance(61)
    assert app.manager.verify(credential) is None
    # The operator's revocation left a tombstone, which the late refresh did not change.
    stone = store.get(credential.key_digest, session.id)
    assert stone is not None and stone.ended == "revoked"
    assert stone.last_seen_ms == session.last_seen_ms
    assert store.touch(credential.key_digest, session.id, clock.now) is False
    assert store.get(credential.key_digest, session.id) == stone


def test_a_foreign_record_does_not_break_the_key(app: JeffTestApp, redis_client: Any) -> None:
    """Data of another shape under our prefix counts as a dead session, never as an error."""
    import msgpack

    app.manager.max_sessions = 2
    session, credential = app.manager.create("bob@example.com")
    hash_key = app.manager.store.hash_key(key_digest("bob@example.com"))  # type: ignore[attr-defined]
    redis_client.hset(hash_key, "foreign", msgpack.packb({"not": "ours"}))
    redis_client.hset(hash_key, "garbage", b"\xc1\xc1")
    assert [s.id for s in app.manager.sessions("bob@example.com")] == [session.id]
    app.manager.create("bob@example.com")  # past max_sessions: the eviction script runs
    assert redis_client.hexists(hash_key, "foreign") == 0  # pruned as dead
    assert app.manager.revoke_all("bob@example.com") == 2
    # The unreadable records went at the login; the two live sessions are tombstones now.
    assert sorted(redis_client.hkeys(hash_key)) == sorted(
        s.id.encode() for s in app.manager.store.list(key_digest("bob@example.com"))
    )
    assert len(redis_client.hkeys(hash_key)) == 2
    assert app.manager.verify(credential) is None


def test_manager_is_usable_from_a_script(redis_url: str, redis_client: Any) -> None:
    from pyramid.paster import bootstrap  # noqa: F401  (what scripts would use)

    from ...app import make_wsgi_app

    wsgi = make_wsgi_app({"jeff.store": redis_url})
    from pyramid.scripting import prepare

    env = prepare(registry=wsgi.registry)
    try:
        request = env["request"]
        manager = request.jeff
        # The application's own store, on Redis: what a script does, the site sees.
        assert manager.store is wsgi.registry.getUtility(ISecurityPolicy).manager.store
        assert isinstance(manager.store, RedisStore)
        session, credential = manager.create("script@example.com")
        assert [s.key for s in manager.sessions("script@example.com")] == ["script@example.com"]
        hash_key = manager.store.hash_key(key_digest("script@example.com"))
        assert redis_client.hkeys(hash_key) == [session.id.encode()]
        assert manager.revoke_all("script@example.com") == 1
    finally:
        env["closer"]()
    assert manager.verify(credential) is None
    (stone,) = manager.store.list(key_digest("script@example.com"))
    assert (stone.id, stone.ended) == (session.id, "revoked")

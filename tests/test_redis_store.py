"""Redis-specific behaviour against a real redis-server: layout, counts, atomicity, outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import pytest
import redis
from pyramid.interfaces import ISecurityPolicy

from pyramid_jeff import RedisStore, SessionManager, StoreUnavailable
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.errors import TooManySessions
from pyramid_jeff.session import TOMBSTONE_MS, Session, pack_meta, pack_record

from .conftest import AppFactory, JeffTestApp
from .helpers import Clock, cookie_value, fresh_client, set_cookies, stored_session
from .redis_server import RedisServer
from .slow_proxy import SlowProxy

pytestmark = pytest.mark.usefixtures("redis_client")


@pytest.fixture
def store_url(redis_url: str) -> str:  # overrides the two-store parametrisation
    return redis_url


def command_counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    for ignored in ("info", "config|resetstat", "config", "flushdb", "ping", "client|setinfo"):
        counts.pop(ignored, None)
    return counts


class Commands:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def __enter__(self) -> Commands:
        self.client.config_resetstat()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counts = command_counts(self.client)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


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


def test_concurrent_logins_lose_nothing(redis_url: str, redis_client: Any) -> None:
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=1000)
    created: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(25):
                session, _ = manager.create("shared::key@example.com")
                with lock:
                    created.append(session.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    listed = {s.id for s in manager.sessions("shared::key@example.com")}
    assert len(created) == 200
    assert listed == set(created)


def test_concurrent_touches_and_revokes(redis_url: str, redis_client: Any) -> None:
    clock = Clock()
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=100, clock=clock)
    pairs = [manager.create("racer@example.com") for _ in range(10)]
    clock.advance(61)
    victims = {s.id for s, _ in pairs[:5]}
    barrier = threading.Barrier(len(pairs) + 1)

    def toucher(credential: Credential) -> None:
        barrier.wait()
        manager.verify(credential)

    def revoker() -> None:
        barrier.wait()
        for session_id in victims:
            manager.revoke("racer@example.com", session_id)

    threads = [threading.Thread(target=toucher, args=(c,)) for _, c in pairs]
    threads.append(threading.Thread(target=revoker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    survivors = manager.sessions("racer@example.com")
    assert {s.id for s in survivors} == {s.id for s, _ in pairs[5:]}
    assert all(s.last_seen_ms == clock.now for s in survivors)  # each touch did write


def test_eviction_past_max_sessions_is_atomic_and_prunes_the_dead(
    redis_url: str, redis_client: Any
) -> None:
    clock = Clock()
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, max_sessions=3, idle_timeout=600, clock=clock)
    stale = manager.create("bob@example.com")[0]
    clock.advance(601)  # the first one is now idle-dead
    keep = []
    for _ in range(3):
        keep.append(manager.create("bob@example.com")[0])
        clock.advance(1)
    hash_key = store.hash_key(key_digest("bob@example.com"))
    assert stale.id.encode() not in redis_client.hkeys(hash_key)  # pruned, not counted
    assert {s.id for s in manager.sessions("bob@example.com")} == {s.id for s in keep}
    newest = manager.create("bob@example.com")[0]
    assert {s.id for s in manager.sessions("bob@example.com")} == {
        keep[1].id,
        keep[2].id,
        newest.id,
    }


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer.start(tmp_path)
    yield server
    server.stop()


def test_outage_is_a_503_and_destroys_nothing(
    make_app: AppFactory, private_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(settings={"jeff.store": private_server.url})
    app.login("bob@example.com")
    leaving = fresh_client(app)
    leaving.login("carol@example.com")
    private_server.pause()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="pyramid_jeff"):
            response = app.get("/protected", status=503)
        assert time.monotonic() - started < 3
        assert "Set-Cookie" not in response.headers
        assert response.headers["Retry-After"]
        assert "session store unavailable" in caplog.text
        assert app.get("/public", status=503).headers.get("Set-Cookie") is None
        assert app.get("/static", status=200).text == "no session needed here"
        response = fresh_client(app).post("/login", {"key": "eve@example.com"}, status=503)
        assert "Set-Cookie" not in response.headers
        assert "Set-Cookie" not in leaving.post("/logout", status=503).headers
    finally:
        private_server.resume()
    # Whatever needed the session failed; nothing was destroyed by the outage itself.
    assert app.get("/protected").text == "secret for bob@example.com"
    assert len(app.manager.sessions("bob@example.com")) == 1
    # Not asserted: whether carol's 503 logout ended her session. Its command may have
    # reached the frozen Redis before the timeout and run on SIGCONT (as a timed-out
    # login may be stored): either outcome is right, her browser was told to retry.


def test_refused_connections_fail_fast(make_app: AppFactory, private_server: RedisServer) -> None:
    app = make_app(settings={"jeff.store": private_server.url})
    app.login("bob@example.com")
    private_server.stop()
    started = time.monotonic()
    app.get("/protected", status=503)
    assert time.monotonic() - started < 2
    with pytest.raises(StoreUnavailable):
        app.manager.sessions("bob@example.com")
    private_server.restart()
    app.get("/protected", status=303)  # a restarted, empty Redis: the cookie is dead now


def test_manager_is_usable_from_a_script(redis_url: str, redis_client: Any) -> None:
    from pyramid.paster import bootstrap  # noqa: F401  (what scripts would use)

    from .app import make_wsgi_app

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


def test_unix_socket_urls(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisServer.start(tmp_path, extra_args=("--unixsocket", str(socket_path)))
    try:
        from pyramid.config import Configurator
        from pyramid.interfaces import ISecurityPolicy

        config = Configurator(settings={"jeff.store": f"unix://{socket_path}?db=3"})
        config.include("pyramid_jeff")
        manager = config.make_wsgi_app().registry.getUtility(ISecurityPolicy).manager
        session, credential = manager.create("socket@example.com")
        assert manager.verify(credential) == session
        assert redis.Redis(unix_socket_path=str(socket_path), db=3).dbsize() == 1
    finally:
        server.stop()


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


def test_concurrent_refreshes_write_once(redis_url: str, redis_client: Any) -> None:
    clock = Clock()
    store = RedisStore.from_url(redis_url)
    manager = SessionManager(store, clock=clock)
    _, credential = manager.create("bob@example.com")
    store.load_scripts()
    clock.advance(61)
    with Commands(redis_client) as refresh:
        # Five requests that all read the stale last_seen before any of them refreshed it.
        for _ in range(5):
            store.touch(
                credential.key_digest,
                credential.session_id,
                clock.now,
                min_interval_ms=manager.touch_interval_ms,
            )
    assert refresh.counts["evalsha"] == 5
    assert refresh.counts["hset"] == 1


# Store-level tests: the caller's clock, from here on.
T0 = 1_800_000_000_000
MINUTE = 60_000
DAY = 24 * 60 * MINUTE
ALICE, BOB = "alice@example.com", "bob@example.com"


def make_session(
    key: str = ALICE,
    *,
    created: int,
    lifetime: int = DAY,
    last_seen: int | None = None,
    **fields: Any,
) -> Session:
    return stored_session(key, created=created, lifetime=lifetime, last_seen=last_seen, **fields)


def add(
    store: RedisStore, s: Session, *, max_sessions: int = 32, now: int | None = None, **kw: Any
) -> list[str]:
    return store.create(
        key_digest(s.key),
        s,
        max_sessions=max_sessions,
        now_ms=s.created_ms if now is None else now,
        idle_timeout_ms=0,
        **kw,
    )


def raw_record(client: redis.Redis, store: RedisStore, s: Session) -> list[Any]:
    """The stored msgpack array of ``s``, as Lua left it."""
    record: list[Any] = msgpack.unpackb(
        client.hget(store.hash_key(key_digest(s.key)), s.id), raw=True
    )
    return record


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_url)
    yield store
    store.close()


@pytest.fixture
def slow_proxy(redis_url: str) -> Iterator[SlowProxy]:
    """The test Redis behind a proxy that counts commands and round trips; every reply
    is a little late, so that two round trips can never pass for one."""
    parts = urlsplit(redis_url)
    proxy = SlowProxy((parts.hostname or "127.0.0.1", parts.port or 6379), delay=0.05)
    yield proxy
    proxy.close()


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

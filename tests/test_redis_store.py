"""Redis-specific behaviour against a real redis-server: layout, counts, atomicity, outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pyramid.interfaces import ISecurityPolicy

from pyramid_jeff import RedisStore, SessionManager, StoreUnavailable
from pyramid_jeff.credentials import Credential, key_digest

from .conftest import AppFactory, JeffTestApp
from .helpers import Clock, cookie_value, fresh_client, set_cookies
from .redis_server import RedisServer

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
    commands of its script."""
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
    assert login.counts == {"evalsha": 1, "hlen": 1, "hset": 1, "pttl": 1, "pexpire": 1}

    with Commands(redis_client) as read:
        for _ in range(10):
            app.get("/protected")
    assert read.counts == {"hget": 10}  # one read, no write

    clock.advance(60)
    with Commands(redis_client) as refresh:
        app.get("/protected")
        app.get("/protected")
    # Two reads, and one update-only refresh script (HGET + HSET inside it).
    assert refresh.counts == {"hget": 3, "evalsha": 1, "hset": 1}

    with Commands(redis_client) as relogin:
        app.login("bob@example.com")
    # Two round trips: the login script, then, once the response carries the new
    # cookie, the revoke script that ends the session this browser had.
    assert relogin.counts["evalsha"] == 2
    assert relogin.counts["hdel"] == 1
    assert set(relogin.counts) == {"evalsha", "hget", "hdel", "hlen", "hset", "pttl", "pexpire"}

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
    assert verify.counts == {"hget": 2}


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
    assert redis_client.keys("*") == []
    assert store.touch(credential.key_digest, session.id, clock.now) is False


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
        # The application's own manager, on Redis: what a script does, the site sees.
        assert manager is wsgi.registry.getUtility(ISecurityPolicy).manager
        assert isinstance(manager.store, RedisStore)
        session, credential = manager.create("script@example.com")
        assert [s.key for s in manager.sessions("script@example.com")] == ["script@example.com"]
        hash_key = manager.store.hash_key(key_digest("script@example.com"))
        assert redis_client.hkeys(hash_key) == [session.id.encode()]
        assert manager.revoke_all("script@example.com") == 1
    finally:
        env["closer"]()
    assert manager.verify(credential) is None
    assert redis_client.exists(hash_key) == 0


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
    assert redis_client.exists(hash_key) == 0
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

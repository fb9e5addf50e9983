"""Every store beside its floor: verify, login and bytes per session, through the manager.

Each store is the ``request.jeff`` manager of a jeff app with that ``jeff.store``. Verify
(1 and 1,000 sessions under the key) and login are timed in the same interleaved rounds
as the store's floor: the same client library doing one read / one write of a
record-sized value (Redis ``GET``/``SET``; pymemcache ``get``/``set`` waiting for the reply;
SQLAlchemy Core ``SELECT`` by primary key built once / one ``INSERT`` in its own
transaction, on the store's own engine). Redis and memcached are private servers;
PostgreSQL and MariaDB get a throw-away database each on the local servers (a store
whose server cannot be reached is skipped).
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyramid_jeff import SessionManager
from pyramid_jeff.testing import jeff_policy
from tests.memcached_server import MemcachedServer
from tests.sql_databases import DatabaseUnavailable, mariadb_database, postgresql_database

from ..measure import USER_AGENT, Case, fmt_ratio, ratio, run_interleaved
from ..report import Report, log, table, version
from ..variants import floor_record, jeff_app
from . import main

STORES = ("memory", "redis", "memcached", "sqlite", "postgresql", "mariadb")
SQL = ("sqlite", "postgresql", "mariadb")
FLOORS = {"verify1": "read", "verify1000": "read", "login": "write"}  # each case's floor
Call = Callable[[], Any]


@contextmanager
def store_urls(redis_url: str) -> Iterator[dict[str, str]]:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        urls = {"memory": "memory://", "redis": redis_url}
        memcached = MemcachedServer.start(extra_args=("-m", "1024"))
        stack.callback(memcached.stop)
        urls["memcached"] = memcached.url
        urls["sqlite"] = f"sqlite:///{Path(tmp) / 'sessions.sqlite'}"
        for name, database in (("postgresql", postgresql_database), ("mariadb", mariadb_database)):
            try:
                urls[name] = stack.enter_context(database())
            except DatabaseUnavailable as exc:
                log(f"stores: {name} skipped: {exc}")
        yield urls


def memcached_client(url: str) -> Any:
    from pymemcache.client.base import Client

    parts = urlsplit(url)
    return Client((parts.hostname, parts.port), connect_timeout=1, timeout=1)


def floors(name: str, url: str, store: Any, value: bytes) -> tuple[Call, Call]:
    """(one read, one write) of ``value`` by the store's own client library."""
    if name == "redis":
        client = store.client
        client.set("floor:read", value)
        return lambda: client.get("floor:read"), lambda: client.set("floor:write", value)
    if name == "memcached":
        mc = memcached_client(url)
        mc.set(b"floor:read", value, noreply=False)
        return lambda: mc.get(b"floor:read"), lambda: mc.set(b"floor:w", value, noreply=False)
    from sqlalchemy import Column, LargeBinary, MetaData, String, Table, bindparam, insert, select

    engine = store.engine
    columns = Column("k", String(64), primary_key=True), Column("v", LargeBinary)
    floor = Table("bench_floor", MetaData(), *columns)
    floor.create(engine, checkfirst=True)
    with engine.begin() as connection:
        connection.execute(insert(floor).values(k="read", v=value))
    query = select(floor).where(floor.c.k == bindparam("k"))  # built once, as the store's

    def read() -> Any:
        with engine.connect() as connection:
            return connection.execute(query, {"k": "read"}).first()

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(insert(floor).values(k=secrets.token_hex(8), v=value))

    return read, write


def storage_bytes(name: str, url: str, store: Any) -> int | None:
    from sqlalchemy import text

    if name == "redis":
        return int(store.client.info("memory")["used_memory"])
    if name == "memcached":
        return int(memcached_client(url).stats()[b"bytes"])
    if name not in SQL:
        return None
    queries = {
        "postgresql": [f"SELECT pg_total_relation_size('{store.table.name}')"],
        "mariadb": [
            f"ANALYZE TABLE {store.table.name}",
            "SELECT data_length + index_length FROM information_schema.tables WHERE"
            f" table_schema = DATABASE() AND table_name = '{store.table.name}'",
        ],
        "sqlite": ["SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"],
    }[name]
    with store.engine.begin() as connection:
        return int([connection.execute(text(q)) for q in queries][-1].scalar_one())


def bytes_per_session(name: str, url: str, manager: SessionManager, count: int) -> str:
    """Storage per session, one session per key (the common case), with a browser UA."""
    before = storage_bytes(name, url, manager.store)
    for _ in range(count if before is not None else 0):
        manager.create(
            f"{secrets.token_hex(8)}@example.com", ip="192.0.2.1", user_agent=USER_AGENT
        )
    after = storage_bytes(name, url, manager.store)
    return "-" if before is None or after is None else f"{(after - before) / count:.0f}"


def measure(name: str, url: str, rounds: int, sessions: int) -> tuple[dict[str, Case], str]:
    """(the timed cases, bytes per session) of one store."""
    manager = jeff_policy(jeff_app(url).registry).manager
    one = manager.create("one@example.com", ip="192.0.2.1", user_agent=USER_AGENT)[1]
    for _ in range(1000):
        crowded = manager.create("crowd@example.com", ip="192.0.2.1", user_agent=USER_AGENT)[1]

    def login() -> Any:
        return manager.create(f"{secrets.token_hex(6)}@example.com", user_agent=USER_AGENT)

    cases = [
        Case("verify1", "verify, 1 session", lambda: manager.verify(one)),
        Case("verify1000", "verify, 1,000 sessions", lambda: manager.verify(crowded)),
        Case("login", "login, a fresh key", login),
    ]
    if name != "memory":
        value = floor_record("one@example.com", USER_AGENT)
        read, write = floors(name, url, manager.store, value)
        cases += [Case("read", "floor: one read", read), Case("write", "floor: one write", write)]
    log(f"stores: {name}, {len(cases)} cases x {rounds} rounds")
    run_interleaved(cases, rounds=rounds, batch=200 if rounds > 5 else 50, warmup=50)
    size = bytes_per_session(name, url, manager, sessions)
    manager.store.close()
    return {case.name: case for case in cases}, size


def row(name: str, c: dict[str, Case], size: str) -> list[str]:
    us = {k: f"{case.median_us():.1f}" for k, case in c.items()}
    by = {k: fmt_ratio(ratio(c[k], c[ref])) for k, ref in FLOORS.items() if ref in c}
    cells = [name, f"{us['verify1']} / {us['verify1000']}", us.get("read", "-")]
    cells += [by.get("verify1", "-"), by.get("verify1000", "-"), us["login"]]
    return [*cells, us.get("write", "-"), by.get("login", "-"), size]


def stores(report: Report, args: Any, redis_url: str) -> None:
    rounds, sessions = (5, 2_000) if args.quick else (15, 10_000)
    with store_urls(redis_url) as urls:
        results = {
            name: measure(name, urls[name], rounds, sessions) for name in STORES if name in urls
        }
    header = ["store", "verify µs (1 / 1,000 sessions)", "floor read µs", "verify / floor"]
    header += ["verify (1,000) / floor", "login µs", "floor write µs", "login / floor"]
    rows = [row(name, cases, size) for name, (cases, size) in results.items()]
    versions = ", ".join(
        f"{d} {version(d)}" for d in ("pymemcache", "SQLAlchemy", "psycopg", "PyMySQL")
    )
    intro = (
        f"{args.made_by}\n\nThrough `SessionManager` (no Pyramid request around it). Floors:"
        " the same client library doing one read / one write of a record-sized value (Redis"
        " `GET`/`SET`; pymemcache `get`/`set` waiting for the reply; SQLAlchemy Core `SELECT`"
        " by primary key built once / one `INSERT` in its own transaction, on the store's own"
        f" engine). Ratios: medians of same-round ratios (IQR). Bytes: {sessions:,} keys with"
        f" one session each, browser User-Agent. {versions}."
    )
    if "redis" in results and "postgresql" in results:
        pg, rd = results["postgresql"][0], results["redis"][0]
        vs = [
            statistics.median(pg[w].round_medians()) / statistics.median(rd[w].round_medians())
            for w in ("verify1", "login")
        ]
        intro += (
            f"\n\nPostgreSQL / Redis in the same run: verify {vs[0]:.2f}x, login {vs[1]:.2f}x."
        )
    report.section(
        "Every store beside its floor", intro, table([*header, "bytes per session"], rows)
    )


if __name__ == "__main__":
    main("benchmarks.investigations.stores", __doc__, stores)

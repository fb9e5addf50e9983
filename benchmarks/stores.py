"""Every store beside its floor: verify, login, and bytes per session.

For each store (memory, Redis, memcached, SQLite, PostgreSQL, MariaDB), built from its
``jeff.store`` URL as an application builds it, this times through the manager:

- *verify*: ``SessionManager.verify`` of a live credential (one store read), with 1 and
  with 1,000 sessions under the key;
- *login*: ``SessionManager.create`` for a fresh key (one atomic store write);

and beside each, in the same interleaved rounds, its floor: the cheapest the same client
library can do the same thing. Redis: one ``GET`` of a record-sized value / one ``SET``
(redis-py); memcached: one ``get`` / one ``set`` (pymemcache); SQL: one SQLAlchemy Core
``SELECT`` of a row by primary key / one ``INSERT`` in its own transaction, on the
store's own engine (same driver, same pool). Ratios are medians of same-round ratios
(see ``timing.py``): this machine is shared and noisy. Then bytes per session: 10,000
sessions, one per key, made through the manager. Usage::

    python benchmarks/stores.py [--quick] [--stores memory,redis,...]

Redis and memcached are private servers started here on free ports; PostgreSQL
(127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306, root) get a throw-away
database each, dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import Case, ratio, run_interleaved

from pyramid_jeff import SessionManager, make_store
from pyramid_jeff.session import pack_record
from pyramid_jeff.settings import parse_settings
from tests.memcached_server import MemcachedServer
from tests.redis_server import RedisServer
from tests.sql_databases import mariadb_database, postgresql_database

STORES = ("memory", "redis", "memcached", "sqlite", "postgresql", "mariadb")
UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


@contextlib.contextmanager
def store_urls(names: list[str], workdir: Path) -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for name in names:
            if name == "memory":
                urls[name] = "memory://"
            elif name == "redis":
                redis_server = RedisServer.start(workdir / "redis")
                stack.callback(redis_server.stop)
                urls[name] = redis_server.url
            elif name == "memcached":
                memcached = MemcachedServer.start(extra_args=("-m", "1024"))
                stack.callback(memcached.stop)
                urls[name] = memcached.url
            elif name == "sqlite":
                urls[name] = f"sqlite:///{workdir / 'sessions.sqlite'}"
            elif name == "postgresql":
                urls[name] = stack.enter_context(postgresql_database())
            elif name == "mariadb":
                urls[name] = stack.enter_context(mariadb_database())
        yield urls


Call = Callable[[], Any]


def memcached_client(store: Any) -> Any:
    """A plain pymemcache client of the store's (one) server."""
    from pymemcache.client.base import Client

    (node,) = store.nodes.values()
    return Client(node.address, connect_timeout=1, timeout=1)


def floor_calls(name: str, store: Any, value: bytes) -> tuple[Call, Call]:
    """(read floor, write floor) for one store: the same client library, one operation."""
    if name == "redis":
        client = store.client
        client.set("floor:read", value)
        return (lambda: client.get("floor:read")), (lambda: client.set("floor:write", value))
    if name == "memcached":
        client = memcached_client(store)
        client.set(b"floor:read", value, noreply=False)
        return (lambda: client.get(b"floor:read")), (
            lambda: client.set(b"floor:write", value, noreply=False)  # a round trip, as ours
        )
    from sqlalchemy import Column, LargeBinary, MetaData, String, Table, bindparam, insert, select

    engine = store.engine
    table = Table(
        "bench_floor",
        MetaData(),
        Column("k", String(64), primary_key=True),
        Column("v", LargeBinary),
    )
    table.create(engine, checkfirst=True)
    with engine.begin() as connection:
        connection.execute(insert(table).values(k="read", v=value))

    query = select(table).where(table.c.k == bindparam("k"))  # built once, as the store's

    def read() -> Any:
        with engine.connect() as connection:
            return connection.execute(query, {"k": "read"}).first()

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(insert(table).values(k=secrets.token_hex(8), v=value))

    return read, write


def measure(name: str, url: str, quick: bool) -> dict[str, Any]:
    store = make_store(parse_settings({"jeff.store": url}), {})
    manager = SessionManager(store, max_sessions=1000)
    one = manager.create("one@example.com", ip="192.0.2.1", user_agent=UA)
    crowd_key = "crowd@example.com"
    for _ in range(999):
        manager.create(crowd_key, ip="192.0.2.1", user_agent=UA)
    crowded = manager.create(crowd_key, ip="192.0.2.1", user_agent=UA)
    for credential in (one[1], crowded[1]):
        assert manager.verify(credential) is not None

    cases = [
        Case("verify1", "verify, 1 session under the key", lambda: manager.verify(one[1])),
        Case(
            "verify1000",
            "verify, 1,000 sessions under the key",
            lambda: manager.verify(crowded[1]),
        ),
        Case(
            "login",
            "login (a fresh key)",
            lambda: manager.create(f"{secrets.token_hex(6)}@example.com", user_agent=UA),
        ),
    ]
    if name != "memory":
        read, write = floor_calls(name, store, pack_record(one[0]))
        cases += [Case("read", "floor: one read", read), Case("write", "floor: one write", write)]
    rounds, batch = (5, 50) if quick else (15, 200)
    run_interleaved(cases, rounds=rounds, batch=batch, warmup=50)
    by = {case.name: case for case in cases}
    result: dict[str, Any] = {"cases": by}
    if name != "memory":
        result["verify/read"] = ratio(by["verify1"], by["read"])
        result["verify1000/read"] = ratio(by["verify1000"], by["read"])
        result["login/write"] = ratio(by["login"], by["write"])
    result["bytes"] = bytes_per_session(name, store, manager, 2_000 if quick else 10_000)
    store.close()
    return result


def bytes_per_session(name: str, store: Any, manager: SessionManager, count: int) -> str:
    """Storage per session, one session per key (the common case), each with a browser UA."""
    before = storage_bytes(name, store)
    if before is None:
        return "-"
    for _ in range(count):
        manager.create(f"{secrets.token_hex(8)}@example.com", ip="192.0.2.1", user_agent=UA)
    after = storage_bytes(name, store)
    assert after is not None
    return f"{(after - before) / count:.0f}"


def storage_bytes(name: str, store: Any) -> int | None:
    if name == "redis":
        return int(store.client.info("memory")["used_memory"])
    if name == "memcached":
        return int(memcached_client(store).stats()[b"bytes"])
    if name in ("sqlite", "postgresql", "mariadb"):
        from sqlalchemy import text

        table = store.table.name
        with store.engine.begin() as connection:
            if name == "postgresql":
                return int(
                    connection.execute(
                        text("SELECT pg_total_relation_size(:t)"), {"t": table}
                    ).scalar_one()
                )
            if name == "mariadb":
                connection.execute(text(f"ANALYZE TABLE {table}"))
                return int(
                    connection.execute(
                        text(
                            "SELECT data_length + index_length FROM information_schema.tables"
                            " WHERE table_schema = DATABASE() AND table_name = :t"
                        ),
                        {"t": table},
                    ).scalar_one()
                )
            pages = connection.execute(text("PRAGMA page_count")).scalar_one()
            size = connection.execute(text("PRAGMA page_size")).scalar_one()
            return int(pages) * int(size)
    return None


def fmt(r: tuple[float, float, float]) -> str:
    return f"{r[0]:.2f}x ({r[1]:.2f}-{r[2]:.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and sessions")
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated")
    args = parser.parse_args(argv)
    names = [n for n in args.stores.split(",") if n]
    print(f"# Stores beside their floors (load average {os.getloadavg()[0]:.2f})\n")
    print(
        "| store | verify µs (1 / 1,000 sessions) | floor read µs | verify / floor | "
        "verify (1,000) / floor | login µs | floor write µs | login / floor | "
        "bytes per session |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    with tempfile.TemporaryDirectory() as tmp, store_urls(names, Path(tmp)) as urls:
        for name in names:
            results[name] = r = measure(name, urls[name], args.quick)
            c = r["cases"]
            verify = f"{c['verify1'].median_us():.1f} / {c['verify1000'].median_us():.1f}"
            cells = [name, verify, "-", "-", "-", f"{c['login'].median_us():.1f}", "-", "-"]
            if name != "memory":
                cells[2] = f"{c['read'].median_us():.1f}"
                cells[3], cells[4] = fmt(r["verify/read"]), fmt(r["verify1000/read"])
                cells[6], cells[7] = f"{c['write'].median_us():.1f}", fmt(r["login/write"])
            print("| " + " | ".join([*cells, r["bytes"]]) + " |", flush=True)
    if "redis" in results and "postgresql" in results:
        sql, rds = results["postgresql"]["cases"], results["redis"]["cases"]
        for what in ("verify1", "login"):
            times = (
                statistics.median(sql[what].round_medians()),
                statistics.median(rds[what].round_medians()),
            )
            print(f"\nPostgreSQL / Redis, {what}: {times[0] / times[1]:.2f}x (medians, same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

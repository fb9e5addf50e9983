"""What the Redis store's tests share: the commands Redis ran, sessions by the caller's
clock, a record as Lua left it."""

from __future__ import annotations

from typing import Any

import msgpack
import redis

from pyramid_jeff import RedisStore
from pyramid_jeff.credentials import key_digest
from pyramid_jeff.session import Session

from ..helpers import ALICE, DAY, session


def command_counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    for ignored in ("info", "config|resetstat", "config", "flushdb", "ping", "client|setinfo"):
        counts.pop(ignored, None)
    return counts


class Commands:
    """The commands Redis ran inside the ``with`` block, by name (INFO commandstats)."""

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


def make_session(key: str = ALICE, *, created: int, lifetime: int = DAY, **fields: Any) -> Session:
    """A stored session of ``key``, living a day unless told."""
    return session(key, created=created, lifetime=lifetime, **fields)


def raw_record(client: redis.Redis, store: RedisStore, s: Session) -> list[Any]:
    """The stored msgpack array of ``s``, as Lua left it."""
    record: list[Any] = msgpack.unpackb(
        client.hget(store.hash_key(key_digest(s.key)), s.id), raw=True
    )
    return record

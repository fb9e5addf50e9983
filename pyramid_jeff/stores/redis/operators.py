"""``sweep`` and ``stats``, for operators (``pjeff``): a ``SCAN`` of the prefix's hashes,
on every primary of a cluster, in pages of a bounded size, then one round trip per page
(a sweep script per hash; an ``HLEN`` per hash). ``stats`` also reads ``INFO`` and the
cutoff (on a cluster, of every slot)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .cluster import on_every_slot
from .commands import text

if TYPE_CHECKING:
    from .store import RedisStore

SWEEP_PAGE = 100  # hashes swept per round trip
STATS_PAGE = 1000  # hashes counted per round trip

# Commands sent to one node in one round trip; their replies, in order.
Batch = Callable[[Sequence[tuple[Any, ...]]], list[Any]]


def cutoff_ms(reply: Any) -> int | None:
    """A ``ZSCORE`` of the cutoff: bytes as Redis sends them, a float once redis-py
    has parsed them, ``None`` when no cutoff was ever set."""
    return None if reply is None else int(float(reply))


def sweep(store: RedisStore, now_ms: int, idle_timeout_ms: int) -> int:
    """Drop the dead sessions of every key (a tombstone once its time is past); return
    how many. Each page of hashes that ``SCAN`` gives is one round trip, each hash one
    atomic script."""
    script = store.scripts.sweep
    load = ("SCRIPT", "LOAD", script.source)
    dropped = 0
    for batch, hash_keys in _hash_pages(store, SWEEP_PAGE):
        calls = [
            ("EVALSHA", script.sha, 2, k, store.cutoff_key(k), now_ms, idle_timeout_ms)
            for k in hash_keys
        ]
        dropped += sum(int(reply) for reply in batch((load, *calls))[1:])
    return dropped


def stats(store: RedisStore) -> dict[str, int | str]:
    """What Redis holds under the prefix: ``keys`` (session hashes, one per session key)
    and ``records`` (their fields: sessions and tombstones), counted by ``SCAN``;
    ``used_memory`` of the whole server (summed over a cluster's primaries);
    ``revoked_everyone_before_ms`` once a cutoff is set."""
    primaries = _primaries(store)
    versions: set[str] = set()
    used_memory = 0
    for batch in primaries:
        server, memory = batch((("INFO", "server"), ("INFO", "memory")))
        versions.add(_info(server).get("redis_version", "unknown"))
        used_memory += int(_info(memory).get("used_memory", 0))
    keys = records = 0
    for batch, hash_keys in _hash_pages(store, STATS_PAGE):
        keys += len(hash_keys)
        records += sum(int(n) for n in batch([("HLEN", k) for k in hash_keys]))
    found: dict[str, int | str] = {
        "backend": "redis",
        "redis_version": ", ".join(sorted(versions)),
        "used_memory": used_memory,
        "keys": keys,
        "records": records,
    }
    if store.commands.pool is not None:
        cutoffs = [cutoff_ms(store.commands.command("ZSCORE", store.everyone_key, "at"))]
    else:
        found["cluster_primaries"] = len(primaries)
        replies = on_every_slot(store.commands, store.everyone_key, _zscore_at)
        cutoffs = [cutoff_ms(reply) for reply in replies]
    latest = max((c for c in cutoffs if c is not None), default=None)
    if latest is not None:
        found["revoked_everyone_before_ms"] = latest
        if store.commands.pool is None:
            # Slots an interrupted revoke_everyone did not reach: run it again.
            found["revoked_everyone_slots_behind"] = sum(
                1 for c in cutoffs if c is None or c < latest
            )
    return found


def _zscore_at(cutoff_key: str) -> tuple[Any, ...]:
    return ("ZSCORE", cutoff_key, "at")


def _primaries(store: RedisStore) -> list[Batch]:
    """A batch runner for each node that holds data: the server, or each primary."""
    commands = store.commands
    if commands.pool is not None:
        return [commands.pipelined]
    nodes = commands.call_cluster(commands.client.get_primaries)
    return [functools.partial(commands.node_pipelined, node) for node in nodes]


def _hash_pages(store: RedisStore, count: int) -> Iterator[tuple[Batch, list[bytes]]]:
    """The session hashes under the prefix, a ``SCAN`` page at a time, each with the
    batch runner of its node (a hash may come twice, as ``SCAN`` allows)."""
    pattern = _glob_escape(store.key_prefix) + "{*"
    scan = ("MATCH", pattern, "COUNT", count, "TYPE", "hash")
    for batch in _primaries(store):
        cursor = 0
        while True:
            next_cursor, hash_keys = batch((("SCAN", cursor, *scan),))[0]
            if hash_keys:
                yield batch, list(hash_keys)
            cursor = int(next_cursor)
            if cursor == 0:
                break


def _glob_escape(pattern: str) -> str:
    """``pattern`` matched literally by a ``SCAN MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", pattern)


def _info(reply: Any) -> dict[str, str]:
    """An ``INFO`` reply: raw text from a pooled connection, a dict from redis-py."""
    if isinstance(reply, dict):
        return {str(name): str(value) for name, value in reply.items()}
    info = {}
    for line in text(reply).splitlines():
        name, colon, value = line.partition(":")
        if colon and not name.startswith("#"):
            info[name] = value
    return info

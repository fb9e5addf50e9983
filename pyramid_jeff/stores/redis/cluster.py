"""What Redis Cluster changes: the cutoff of ``revoke_everyone`` kept once per slot.

A script may only touch keys of its own slot, so the cutoff (the score of the member
``at`` in a sorted set, ``<prefix>everyone`` on a single Redis) is kept once per hash slot,
``<prefix>everyone{<tag>}``, where ``<tag>`` is the smallest hex number whose CRC16 falls
in that slot (:func:`slot_tags`): each session hash has the copy of its own slot beside
it (:meth:`~pyramid_jeff.stores.redis.RedisStore.cutoff_key`). These tags are fixed for
good (another choice would lose the cutoffs already written). 16384 small keys, under
2 MB in all, without a TTL.

What a cluster cannot give: ``revoke_everyone`` is one write per slot, pipelined to the
primary that owns the slot (one round trip per primary, a few tenths of a second in
all), not one atomic step. While it runs, slots already written end their sessions and
the others not yet; if a node fails meanwhile, it raises
:class:`~pyramid_jeff.StoreUnavailable`, possibly with some slots written, and running it
again (with the same or a later time) completes it. ``stats()`` counts the slots whose
cutoff is behind (``revoked_everyone_slots_behind``).
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from .commands import Commands, unavailable

SLOTS = 16384  # Redis Cluster hash slots


def key_slot(name: bytes) -> int:
    """The Redis Cluster hash slot of key ``name``: CRC16 (XMODEM, which is what
    ``binascii.crc_hqx`` with 0 computes) of its hash tag or of the whole name."""
    start = name.find(b"{")
    if start >= 0:
        end = name.find(b"}", start + 1)
        if end > start + 1:
            name = name[start + 1 : end]
    return binascii.crc_hqx(name, 0) % SLOTS


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For each cluster hash slot, the hash tag of its copy of the cutoff: the smallest
    hex number that falls in that slot (about 300,000 CRCs, a tenth of a second, once
    per process)."""
    tags: dict[int, str] = {}
    number = 0
    while len(tags) < SLOTS:
        tag = b"%x" % number
        tags.setdefault(binascii.crc_hqx(tag, 0) % SLOTS, tag.decode("ascii"))
        number += 1
    return tuple(tags[slot] for slot in range(SLOTS))


def on_every_slot(
    commands: Commands, everyone_key: str, command: Callable[[str], tuple[Any, ...]]
) -> list[Any]:
    """``command(cutoff_key)`` for the cutoff of every slot of a cluster, pipelined to
    the primary that owns the slot, one round trip per primary; the replies in slot
    order. Not redis-py's cluster pipeline: on a timeout it resends every command of
    the node one by one, each with its own timeout (thousands of them here)."""
    by_node: dict[str, tuple[Any, list[int]]] = {}
    try:
        for slot in range(SLOTS):
            node = commands.client.nodes_manager.get_node_from_slot(slot)
            by_node.setdefault(node.name, (node, []))[1].append(slot)
    except (redis.RedisError, RedisClusterException) as exc:  # a slot no node serves
        raise unavailable(exc) from exc
    tags = slot_tags()
    replies: list[Any] = [None] * SLOTS
    for node, slots in by_node.values():
        batch = [command(f"{everyone_key}{{{tags[slot]}}}") for slot in slots]
        for slot, reply in zip(slots, commands.node_pipelined(node, batch), strict=True):
            replies[slot] = reply
    return replies

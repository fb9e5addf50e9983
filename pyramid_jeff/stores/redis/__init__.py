"""The production store: Redis (>= 6.2) or Redis Cluster, through redis-py.

Layout: one hash per session key, ``<prefix>{<key digest>}``, one field per session id,
the value a msgpack record (see :mod:`pyramid_jeff.session`; a tombstone has the reason
as a tenth item). The ``{...}`` hash tag puts all sessions of a key in one cluster slot,
so every operation on a key is a single command, a single-key Lua script
(:mod:`.scripts`) or commands pipelined on one node: atomic, and valid on a cluster.

The cutoff of :meth:`RedisStore.revoke_everyone` (sessions created at or before it are
dead) is the score of the member ``at`` in a sorted set, ``<prefix>everyone``, so that
``ZADD GT`` keeps the later of two cutoffs without a script; a cluster keeps a copy per
slot (:mod:`.cluster`). The cutoff has no TTL.

The hash's TTL is a backstop that Redis enforces on its own clock: it is never shorter
than the longest absolute lifetime in the hash. Session expiry itself is decided by the
application's clock when a session is read.

Modules: :mod:`.store` (the store), :mod:`.scripts` (its Lua, and the round trips of
each operation), :mod:`.commands` (one round trip per call, no retry),
:mod:`.budget` (every wait within the request's budget), :mod:`.cluster`,
:mod:`.operators` (``sweep``, ``stats``).
"""

from .cluster import SLOTS, key_slot, slot_tags
from .store import RedisStore

__all__ = ["SLOTS", "RedisStore", "key_slot", "slot_tags"]

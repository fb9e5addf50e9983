"""The production store: Redis (>= 6.2) or Redis Cluster, through redis-py.

Layout: one hash per session key, ``<prefix>{<key digest>}``, one field per session id,
the value a msgpack record (see :mod:`pyramid_jeff.session`; a tombstone has the reason
as a tenth item). The ``{...}`` hash tag puts all sessions of a key in one cluster slot,
so every operation on a key is a single command, a single-key Lua script or commands
pipelined on one node: atomic, and valid on a cluster.

The cutoff of :meth:`RedisStore.revoke_everyone` (sessions created at or before it are
dead) is the score of the member ``at`` in a sorted set, so that ``ZADD GT`` keeps the
later of two cutoffs without a script. On a single Redis it is one key,
``<prefix>everyone``. On a cluster a script may only touch keys of its own slot, so the
cutoff is kept once per hash slot, ``<prefix>everyone{<tag>}``, where ``<tag>`` is the
smallest hex number whose CRC16 falls in that slot (:func:`_slot_tags`): each session
hash has the copy of its own slot beside it (:meth:`RedisStore.cutoff_key`). These tags
are fixed for good (another choice would lose the cutoffs already written). The cutoff
has no TTL: one small key, or 16384 of them on a cluster (under 2 MB in all).

Round trips and commands (a script's commands run inside Redis, in one step):

- ``get``, the verify read of every authenticated request: one round trip whatever the
  number of sessions under the key. On a single Redis, ``HGET`` and ``ZSCORE``
  pipelined in one write (they cost the server about a microsecond together; a script
  doing the same, about eight). On a cluster, one ``EVAL`` of a two-command read
  script (cheaper than redis-py's cluster pipeline; ``EVAL``, unlike ``EVALSHA``, can
  never answer ``NOSCRIPT`` and need a second round trip).
- ``list``: the same, with ``HGETALL``.
- ``create``: one script (``ZSCORE``, ``HGET`` of the replaced session, ``HLEN``; at
  the cap ``HGETALL``, ``HDEL`` of the dead, ``HSET`` of each evicted one's tombstone;
  ``HSET``, ``PTTL``, ``PEXPIRE``).
- ``touch``: one script (``HGET``, ``ZSCORE``, an ``HSET`` when due).
- ``revoke``: one script (``HGET``, ``ZSCORE``, then ``HDEL``, or ``HSET`` of the
  tombstone).
- ``revoke_all``: one script (``ZSCORE``, ``HGETALL``, an ``HSET`` or ``HDEL`` each).
- ``revoke_everyone``: one ``ZADD GT``; on a cluster 16384 of them, one per slot,
  pipelined to the primary that owns the slot (one round trip per primary, a few
  tenths of a second in all).
- ``sweep`` and ``stats`` (operators): ``SCAN`` of the prefix's hashes, on every
  primary of a cluster, in pages of a bounded size; then one round trip per page (a
  sweep script per hash; ``HLEN`` per hash). ``stats`` also reads ``INFO`` and the
  cutoff (on a cluster, of every slot).

The other scripts run by ``EVALSHA``: on a single Redis the first call loads
them all in the same round trip (and so does the call that finds them gone after a
restart); on a cluster, a node without them gets an ``EVAL``.

What a cluster cannot give: ``revoke_everyone`` is one write per slot, not one atomic
step. While it runs, slots already written end their sessions and the others not yet;
if a node fails meanwhile, it raises :class:`~pyramid_jeff.StoreUnavailable`, possibly
with some slots written, and running it again (with the same or a later time) completes it.
``stats()`` counts the slots whose cutoff is behind (``revoked_everyone_slots_behind``).

The hash's TTL is a backstop that Redis enforces on its own clock: it is never shorter
than the longest absolute lifetime in the hash. Session expiry itself is decided by the
application's clock when a session is read.
"""

from __future__ import annotations

import binascii
import builtins
import functools
import hashlib
import inspect
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from . import deadline
from .errors import StoreUnavailable, TooManySessions
from .session import TOMBSTONE_MS, Session, pack_record, unpack_record

log = logging.getLogger(__name__)

SLOTS = 16384  # Redis Cluster hash slots
SWEEP_PAGE = 100  # hashes swept per round trip
STATS_PAGE = 1000  # hashes counted per round trip

# Lua shared by the scripts. Record items: [1]=version [2]=created [3]=last_seen
# [4]=expires [5]=token digest [6]=session key ... [9]=meta (never decoded: an opaque
# string here) [10]=the end reason of a tombstone. A record of any other shape (another
# application's data under the same prefix, a corrupt value) counts as dead instead of
# failing the script. Two keys whose digests collide share a hash: every script that
# acts on "the sessions of a key" compares the record's key with the key asked for, so
# one key's logins and revocations never end the other's sessions.
_PRELUDE = f"""
local TOMBSTONE_MS = {TOMBSTONE_MS}
local function decode(value)
  local ok, r = pcall(cmsgpack.unpack, value)
  if ok and type(r) == 'table' and type(r[2]) == 'number' and type(r[3]) == 'number'
      and type(r[4]) == 'number' and type(r[5]) == 'string' and type(r[6]) == 'string'
      and (r[10] == nil or type(r[10]) == 'string') then
    return r
  end
  return nil
end
-- Sessions created at or before the cutoff (revoke_everyone) are dead.
local function cutoff_of(key)
  local at = redis.call('ZSCORE', key, 'at')
  if at then return tonumber(at) end
  return -1
end
-- 'live'; 'stone': a tombstone still kept to tell its browser why (one that the cutoff
-- made is kept as if written at the cutoff); 'dead': the rest, which may go.
local function state(r, now, idle, cutoff)
  if r == nil then return 'dead' end
  local kept = nil
  if r[10] ~= nil then
    kept = r[4]
  elseif r[2] <= cutoff then
    kept = math.min(r[4], cutoff + TOMBSTONE_MS)
  end
  if kept ~= nil then
    if kept > now then return 'stone' end
    return 'dead'
  end
  if r[4] <= now or (idle > 0 and r[3] + idle <= now) then return 'dead' end
  return 'live'
end
-- Rewrite a live session as a tombstone: the same record, the reason as a tenth item,
-- kept at most TOMBSTONE_MS.
local function bury(hash, id, r, reason, now)
  r[10] = reason
  r[4] = math.min(r[4], now + TOMBSTONE_MS)
  redis.call('HSET', hash, id, cmsgpack.pack(r))
end
"""

# Every script: KEYS[1]=the session hash, KEYS[2]=the cutoff of its slot.

# ARGV: session id, record, now, idle ms, max sessions, ttl ms, id to replace ('' for
# none), its token digest, the session key, '1' to evict (else refuse a full key).
# Returns the live sessions ended (the replaced one, then the evicted ones, oldest
# first), or -1, having written nothing, when the key is full and eviction is off.
# Sessions of another key (a digest collision) are neither counted, pruned nor evicted.
_CREATE = (
    _PRELUDE
    + """
local hash, key, replace_id = KEYS[1], ARGV[9], ARGV[7]
local now, idle, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cutoff = cutoff_of(KEYS[2])
local ended, replaced = {}, nil
if replace_id ~= '' then
  local old = decode(redis.call('HGET', hash, replace_id) or '')
  if old ~= nil and old[5] == ARGV[8] then
    replaced = replace_id
    if state(old, now, idle, cutoff) == 'live' then ended[1] = replace_id end
  end
end
local size = redis.call('HLEN', hash)
if replaced then size = size - 1 end
local dead, victims = {}, {}
if size >= max then
  local function before(a, b)
    return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
  end
  -- One pass: the dead to drop, the live to count, and the oldest of them (by creation
  -- time, then id). A login evicts one session; only a lowered cap needs more, and a sort.
  local fields = redis.call('HGETALL', hash)
  local alive, oldest = {}, nil
  for i = 1, #fields, 2 do
    local id = fields[i]
    if id ~= replaced then
      local record = decode(fields[i + 1])
      if record == nil or record[6] == key then
        if state(record, now, idle, cutoff) == 'live' then
          local entry = {record[2], id, record}
          alive[#alive + 1] = entry
          if oldest == nil or before(entry, oldest) then oldest = entry end
        else
          dead[#dead + 1] = id
        end
      end
    end
  end
  local excess = #alive - max + 1
  if excess > 0 then
    if ARGV[10] ~= '1' then return -1 end
    if excess == 1 then
      victims[1] = oldest
    else
      table.sort(alive, before)
      for i = 1, excess do victims[i] = alive[i] end
    end
  end
end
if replaced then redis.call('HDEL', hash, replaced) end
for i = 1, #dead, 100 do
  redis.call('HDEL', hash, unpack(dead, i, math.min(i + 99, #dead)))
end
for _, victim in ipairs(victims) do
  bury(hash, victim[2], victim[3], 'evicted', now)
  ended[#ended + 1] = victim[2]
end
redis.call('HSET', hash, ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[6])
if redis.call('PTTL', hash) < ttl then redis.call('PEXPIRE', hash, ttl) end
return ended
"""
)

# ARGV: session id, last seen ms, min interval ms. Update-only: a revoked session stays
# dead, a tombstone is never changed; of concurrent refreshes of one session, only the
# first writes.
_TOUCH = (
    _PRELUDE
    + """
local record = decode(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if record == nil or record[10] ~= nil or record[2] <= cutoff_of(KEYS[2]) then return 0 end
local seen = tonumber(ARGV[2])
if seen >= record[3] + math.max(tonumber(ARGV[3]), 1) then
  record[3] = seen
  redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(record))
end
return 1
"""
)

# ARGV: session id, now, idle ms, token digest, session key ('' for any), '1' to check
# the token digest (any digest, even an empty one, must then match), '1' to leave a
# tombstone (a live session becomes one, a tombstone stays; the dead go either way).
# Returns 1 if a live session was ended.
_REVOKE = (
    _PRELUDE
    + """
local hash, id = KEYS[1], ARGV[1]
local value = redis.call('HGET', hash, id)
if not value then return 0 end
local record = decode(value)
if ARGV[6] == '1' and (record == nil or record[5] ~= ARGV[4]) then return 0 end
if ARGV[5] ~= '' and record ~= nil and record[6] ~= ARGV[5] then return 0 end
local now = tonumber(ARGV[2])
local s = state(record, now, tonumber(ARGV[3]), cutoff_of(KEYS[2]))
if ARGV[7] == '1' and s == 'live' then
  bury(hash, id, record, 'revoked', now)
  return 1
end
if ARGV[7] == '1' and s == 'stone' then return 0 end
redis.call('HDEL', hash, id)
if s == 'live' then return 1 end
return 0
"""
)

# ARGV: id to keep ('' for none), now, idle ms, session key ('' for any). The live
# become tombstones, tombstones stay, the dead go (unreadable records are nobody's:
# they go too). Returns the ids of the live sessions ended.
_REVOKE_ALL = (
    _PRELUDE
    + """
local hash, keep, key = KEYS[1], ARGV[1], ARGV[4]
local now, idle = tonumber(ARGV[2]), tonumber(ARGV[3])
local cutoff = cutoff_of(KEYS[2])
local fields = redis.call('HGETALL', hash)
local ended = {}
for i = 1, #fields, 2 do
  local id = fields[i]
  if id ~= keep then
    local record = decode(fields[i + 1])
    if key == '' or record == nil or record[6] == key then
      local s = state(record, now, idle, cutoff)
      if s == 'live' then
        bury(hash, id, record, 'revoked', now)
        ended[#ended + 1] = id
      elseif s == 'dead' then
        redis.call('HDEL', hash, id)
      end
    end
  end
end
return ended
"""
)

# ARGV: now, idle ms. Drops the dead (tombstones past their time included) of every
# key in the hash; returns how many.
_SWEEP = (
    _PRELUDE
    + """
local hash = KEYS[1]
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
local cutoff = cutoff_of(KEYS[2])
local fields = redis.call('HGETALL', hash)
local dropped = 0
for i = 1, #fields, 2 do
  if state(decode(fields[i + 1]), now, idle, cutoff) == 'dead' then
    redis.call('HDEL', hash, fields[i])
    dropped = dropped + 1
  end
end
return dropped
"""
)

# The verify read on a cluster (see the module docstring): the session and its
# slot's cutoff, in one command. ARGV: session id.
_GET = "return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('ZSCORE', KEYS[2], 'at')}"
_LIST = "return {redis.call('HGETALL', KEYS[1]), redis.call('ZSCORE', KEYS[2], 'at')}"


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
def _slot_tags() -> tuple[str, ...]:
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


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a ``SCAN MATCH`` pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _cutoff_ms(reply: Any) -> int | None:
    """A ``ZSCORE`` of the cutoff: bytes as Redis sends them, a float once redis-py
    has parsed them, ``None`` when no cutoff was ever set."""
    return None if reply is None else int(float(reply))


def _cut(session: Session, cutoff: int | None) -> Session:
    """``session`` as a ``"revoked"`` tombstone when the cutoff ended it (kept as if
    written at the cutoff, as the scripts judge it)."""
    if cutoff is not None and session.ended is None and session.created_ms <= cutoff:
        return session.tombstone("revoked", cutoff)
    return session


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("ascii", "backslashreplace")


def _info(reply: Any) -> dict[str, str]:
    """An ``INFO`` reply: raw text from a pooled connection, a dict from redis-py."""
    if isinstance(reply, dict):
        return {str(name): str(value) for name, value in reply.items()}
    info = {}
    for line in _text(reply).splitlines():
        name, colon, value = line.partition(":")
        if colon and not name.startswith("#"):
            info[name] = value
    return info


def _takes_command_name(pool: Any) -> bool:
    """Whether ``pool.get_connection`` requires a command name: redis-py before 5.3.

    From 5.3 on the argument is optional and deprecated (a warning whenever it is given),
    so it is passed only where it is required. Decided once per store, from the signature
    (redis-py's deprecation decorator keeps the original's through ``__wrapped__``).
    """
    try:
        parameters = inspect.signature(pool.get_connection).parameters
    except (TypeError, ValueError):  # no signature to read: the old calling convention is safe
        return True
    first = next(iter(parameters.values()), None)
    return (
        first is not None
        and first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD)
        and first.default is first.empty
    )


def _unavailable(exc: Exception) -> StoreUnavailable:
    # Connection refused, timeouts, READONLY replicas, LOADING, OOM: the store cannot
    # answer now. Never treated as "no session".
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")


def _budget_spent() -> StoreUnavailable:
    # This request already waited jeff.redis.socket_timeout on the store in total.
    return StoreUnavailable("redis: the request's store budget is spent")


class _BudgetedConnection:
    """Mixed into redis-py's connection classes by :meth:`RedisStore.from_url`: inside a
    request, every socket wait (connecting, the TLS and AUTH handshake, each send and
    each read) gets at most what the request's store budget has left; outside one, the
    configured timeouts. One ``settimeout`` per send or read: no extra round trip."""

    _sock: Any
    socket_timeout: float | None
    socket_connect_timeout: float | None

    def _connect(self) -> Any:
        budget = deadline.current()
        if budget is None:
            return super()._connect()  # type: ignore[misc]
        connect_timeout, timeout = self.socket_connect_timeout, self.socket_timeout
        self.socket_connect_timeout = budget.wait(connect_timeout)
        self.socket_timeout = budget.wait(timeout)
        self._jeff_armed = True  # the new socket's timeout is the budget's
        try:
            return super()._connect()  # type: ignore[misc]
        finally:
            self.socket_connect_timeout, self.socket_timeout = connect_timeout, timeout

    # Whether the socket may hold a budget's timeout rather than the configured one.
    _jeff_armed = False

    def _arm(self) -> None:
        sock = self._sock
        if sock is None:
            return
        budget = deadline.current()
        if budget is not None:
            sock.settimeout(budget.wait(self.socket_timeout))
            self._jeff_armed = True
        elif self._jeff_armed:  # back to the configured timeout outside a request
            sock.settimeout(self.socket_timeout)
            self._jeff_armed = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._arm()
        super().send_packed_command(command, check_health)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        self._arm()
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


_BUDGETED_CLASSES: dict[type, type] = {}


def _budgeted(connection_class: type) -> type:
    if issubclass(connection_class, _BudgetedConnection):
        return connection_class
    budgeted = _BUDGETED_CLASSES.get(connection_class)
    if budgeted is None:
        name = f"Budgeted{connection_class.__name__}"
        budgeted = type(name, (_BudgetedConnection, connection_class), {})
        _BUDGETED_CLASSES[connection_class] = budgeted
    return budgeted


class _BudgetedPool(redis.BlockingConnectionPool):
    """Inside a request, a wait for a free connection gets at most what is left."""

    @property
    def timeout(self) -> float | None:
        budget = deadline.current()
        configured: float | None = self._jeff_timeout
        return configured if budget is None else budget.wait(configured)

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._jeff_timeout = value


def _handshake_options() -> dict[str, Any]:
    """Connection options for a handshake of no round trip on database 0 without AUTH.

    RESP2 (``protocol=2``): no ``HELLO``. No ``CLIENT SETINFO`` (two round trips that
    Redis < 7.2 rejects): redis-py >= 5.3 accepts ``driver_info=None`` (and warns about
    ``lib_name``), older ones ``lib_name=None, lib_version=None``. ``SELECT`` is sent
    by redis-py only for a database other than 0.
    """
    parameters = inspect.signature(redis.connection.AbstractConnection.__init__).parameters
    if "driver_info" in parameters:
        return {"protocol": 2, "driver_info": None}
    return {"protocol": 2, "lib_name": None, "lib_version": None}


class _Script:
    """A Lua script run by its SHA1, loaded on demand (after a Redis restart too)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()


# Commands sent to one node in one round trip; their replies, in order.
_Batch = Callable[[Sequence[tuple[Any, ...]]], list[Any]]


class RedisStore:
    """Sessions in Redis. ``client`` is a ``redis.Redis`` or ``redis.RedisCluster``.

    Inside a request (see :mod:`pyramid_jeff.deadline`) every store call counts against
    the request's budget; it is checked before each call and bounds each send and read.
    With a client made by :meth:`from_url` it also bounds the wait for a pooled
    connection and connecting.
    """

    def __init__(
        self, client: Any, *, key_prefix: str = "jeff:", request_budget: float | None = 1.0
    ) -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain '{' or '}' (they pick the hash slot)")
        self.client = client
        self.key_prefix = key_prefix
        # Seconds one request may wait on Redis in total (see pyramid_jeff.deadline).
        self.request_budget = request_budget
        self._create = _Script(_CREATE)
        self._touch = _Script(_TOUCH)
        self._revoke = _Script(_REVOKE)
        self._revoke_all = _Script(_REVOKE_ALL)
        self._sweep = _Script(_SWEEP)  # an operator's: loaded by each sweep itself
        self._scripts = (self._create, self._touch, self._revoke, self._revoke_all)
        self._script_loads = tuple(("SCRIPT", "LOAD", script.source) for script in self._scripts)
        # Whether this server has our scripts, as far as we know: the first script call
        # loads them all in the same round trip, and so does the call that finds them
        # gone (a restart, a failover), so NOSCRIPT never costs an EVAL per script.
        self._scripts_loaded = False
        self._cluster = isinstance(client, redis.RedisCluster)
        # A plain client runs commands on a pooled connection directly: redis-py's
        # generic path (retry wrapper, observability hooks) costs more than the round
        # trip itself for a one-field read. A cluster client routes commands itself.
        self._pool = None if self._cluster else client.connection_pool
        # redis-py < 5.3 requires a command name (which its pools ignore); later ones warn on it.
        self._pass_command_name = self._pool is not None and _takes_command_name(self._pool)
        self._everyone_key = f"{key_prefix}everyone"
        # The cutoff's copy of each slot on a cluster: worked out now, not by a request.
        self._slot_tags = _slot_tags() if self._cluster else ()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 50,
        key_prefix: str = "jeff:",
        cluster: bool = False,
    ) -> RedisStore:
        """A store with bounded waits everywhere and no silent retries.

        Outside a request, every command fails within ``socket_timeout`` (connecting:
        within ``socket_connect_timeout``) and a call waits at most ``socket_timeout``
        for a free connection when all ``max_connections`` are busy. Inside a request,
        all these waits together get the request's budget (``socket_timeout``, opened by
        the tween), each one only the time left. New connections cost no handshake
        round trip (RESP2, no ``CLIENT SETINFO``; ``SELECT`` only for a database other
        than 0; ``AUTH`` when a password is set). redis-py checks the process id of its
        pool, so a store created before a fork is safe in workers.
        """
        no_retry = Retry(NoBackoff(), 0)
        client: Any
        if cluster:
            client = redis.RedisCluster.from_url(
                url,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                max_connections=max_connections,
                retry=no_retry,
                **_handshake_options(),
            )
        else:
            pool = _BudgetedPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                retry=no_retry,
                **_handshake_options(),
            )
            pool.connection_class = _budgeted(pool.connection_class)
            client = redis.Redis(connection_pool=pool)
        return cls(client, key_prefix=key_prefix, request_budget=socket_timeout)

    def load_scripts(self) -> None:
        """Load the Lua scripts now (optional: the first script call loads them anyway)."""
        if self._pool is None:  # a cluster: every primary needs them
            for script in self._scripts:
                self._call_cluster(self.client.script_load, script.source)
        else:
            for reply in self._round_trip(self._script_loads):
                if isinstance(reply, redis.ResponseError):
                    raise _unavailable(reply) from reply
        self._scripts_loaded = True

    def hash_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}{{{key_digest}}}"

    def cutoff_key(self, hash_key: str | bytes) -> str:
        """The key of the cutoff that the sessions in ``hash_key`` obey: one for a
        single Redis, the copy of the hash's own slot on a cluster."""
        if not self._cluster:
            return self._everyone_key
        name = hash_key.encode("utf-8") if isinstance(hash_key, str) else hash_key
        return f"{self._everyone_key}{{{self._slot_tags[key_slot(name)]}}}"

    def _call_cluster(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call redis-py (a cluster client, or one node's), within the budget."""
        budget = deadline.current()
        if budget is not None and budget.remaining() <= 0:
            raise _budget_spent()
        try:
            if budget is None:
                return method(*args, **kwargs)
            with budget.spending():
                return method(*args, **kwargs)
        except (redis.RedisError, RedisClusterException) as exc:
            raise _unavailable(exc) from exc

    def _round_trip(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` together and read their replies: one round trip, no retry.

        An error reply (read whole: the connection stays usable) is returned in its
        place as its ``ResponseError``; anything else that fails is ``StoreUnavailable``.
        """
        pool = self._pool
        assert pool is not None
        budget = deadline.current()
        if budget is not None:
            if budget.remaining() <= 0:
                raise _budget_spent()
            budget.start()
        try:
            if self._pass_command_name:
                connection = pool.get_connection(commands[0][0])
            else:
                connection = pool.get_connection()
            try:
                if budget is not None and not isinstance(connection, _BudgetedConnection):
                    # A client made elsewhere: bound this call's send and reads at least.
                    connection._sock.settimeout(budget.wait(connection.socket_timeout))
                if len(commands) == 1:
                    connection.send_command(*commands[0])
                else:
                    # One write (redis-py cuts a batch into 6 kB pieces): the server
                    # then reads the batch at once and answers it in one reply.
                    packed = b"".join(connection.pack_commands(commands))
                    connection.send_packed_command([packed])
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(connection.read_response())
                    except redis.ResponseError as exc:
                        replies.append(exc)
                if budget is not None and not isinstance(connection, _BudgetedConnection):
                    connection._sock.settimeout(connection.socket_timeout)
                return replies
            except BaseException:
                # The reply may still be on its way: never hand this socket out again.
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc
        finally:
            if budget is not None:
                budget.stop()

    def _pipelined(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands on a pooled connection in one round trip; an error reply fails it."""
        replies = self._round_trip(commands)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise _unavailable(reply) from reply
        return replies

    def _node_pipelined(self, node: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands to one cluster node in one round trip; an error reply fails it."""
        pipeline = self.client.get_redis_connection(node).pipeline(transaction=False)
        for command in commands:
            pipeline.execute_command(*command)
        replies: list[Any] = self._call_cluster(pipeline.execute, raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise _unavailable(reply) from reply
        return replies

    def _command(self, *args: Any) -> Any:
        """Run one command: one round trip, no retry."""
        if self._pool is None:
            return self._call_cluster(self.client.execute_command, *args)
        return self._pipelined((args,))[0]

    def _run(self, script: _Script, hash_key: str, *args: Any) -> Any:
        """Run ``script`` on a session hash and the cutoff of its slot."""
        keys = (hash_key, self.cutoff_key(hash_key))
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if self._pool is None:  # a cluster: the node that owns the key
            try:
                return self._command(*call)
            except StoreUnavailable as exc:
                if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
                    raise
            # Not in this node's script cache (a restart, a failover): EVAL caches it.
            return self._command("EVAL", script.source, len(keys), *keys, *args)
        if self._scripts_loaded:
            reply = self._round_trip((call,))[0]
            if isinstance(reply, redis.exceptions.NoScriptError):
                self._scripts_loaded = False  # a restart, a failover: load them all again
        if not self._scripts_loaded:
            # SCRIPT LOAD of every script, then the call: still one round trip.
            *loads, reply = self._round_trip((*self._script_loads, call))
            if not any(isinstance(load, redis.ResponseError) for load in loads):
                self._scripts_loaded = True
        if isinstance(reply, redis.ResponseError):
            raise _unavailable(reply) from reply
        return reply

    def _read(self, command: tuple[Any, ...], script: str, hash_key: str) -> tuple[Any, Any]:
        """``command`` on the session hash, and the cutoff of its slot: one round trip
        (see the module docstring)."""
        cutoff_key = self.cutoff_key(hash_key)
        if self._pool is None:
            value, cutoff = self._command("EVAL", script, 2, hash_key, cutoff_key, *command[2:])
        else:
            value, cutoff = self._pipelined((command, ("ZSCORE", cutoff_key, "at")))
        return value, cutoff

    def create(
        self,
        key_digest: str,
        session: Session,
        *,
        max_sessions: int,
        now_ms: int,
        idle_timeout_ms: int,
        replace_id: str | None = None,
        replace_token_digest: bytes | None = None,
        evict: bool = True,
    ) -> list[str]:
        args = [
            session.id,
            pack_record(session),
            now_ms,
            idle_timeout_ms,
            max_sessions,
            max(session.expires_ms - now_ms, 1),
            replace_id or "",
            replace_token_digest or b"",
            session.key,
            "1" if evict else "0",
        ]
        reply = self._run(self._create, self.hash_key(key_digest), *args)
        if isinstance(reply, int):  # the key is full of live sessions: nothing written
            raise TooManySessions()
        return [_text(session_id) for session_id in reply]

    def get(self, key_digest: str, session_id: str) -> Session | None:
        hash_key = self.hash_key(key_digest)
        value, cutoff = self._read(("HGET", hash_key, session_id), _GET, hash_key)
        if value is None:
            return None
        return _cut(unpack_record(session_id, value), _cutoff_ms(cutoff))

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        hash_key = self.hash_key(key_digest)
        return bool(self._run(self._touch, hash_key, session_id, last_seen_ms, min_interval_ms))

    def list(self, key_digest: str) -> list[Session]:
        hash_key = self.hash_key(key_digest)
        fields, cutoff_reply = self._read(("HGETALL", hash_key), _LIST, hash_key)
        cutoff = _cutoff_ms(cutoff_reply)
        # A flat list in RESP2 and from a script; a map from a client speaking RESP3.
        pairs = (
            fields.items() if isinstance(fields, dict) else zip(*[iter(fields)] * 2, strict=True)
        )
        sessions = []
        for session_id, value in pairs:
            try:
                sessions.append(_cut(unpack_record(session_id.decode("ascii"), value), cutoff))
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("skipping an unreadable session record: %s", exc)
        return sessions

    def revoke(
        self,
        key_digest: str,
        session_id: str,
        *,
        now_ms: int,
        idle_timeout_ms: int,
        token_digest: bytes | None = None,
        key: str | None = None,
        tombstone: bool = False,
    ) -> bool:
        """End one session; with ``key``, only if it is a session of that key (the
        hash may hold another key's sessions if the digests of two keys collide)."""
        hash_key = self.hash_key(key_digest)
        check_token = "0" if token_digest is None else "1"
        args = (session_id, now_ms, idle_timeout_ms, token_digest or b"", key or "", check_token)
        return bool(self._run(self._revoke, hash_key, *args, "1" if tombstone else "0"))

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> builtins.list[str]:
        """End every session but ``keep``; with ``key``, only sessions of that key."""
        hash_key = self.hash_key(key_digest)
        args = (keep or "", now_ms, idle_timeout_ms, key or "")
        return [_text(session_id) for session_id in self._run(self._revoke_all, hash_key, *args)]

    def revoke_everyone(self, *, now_ms: int) -> None:
        """Sessions created at or before ``now_ms`` are dead; ``ZADD GT`` keeps the later
        cutoff. On a cluster, one write per slot (see the module docstring)."""
        if self._pool is not None:
            self._command("ZADD", self._everyone_key, "GT", now_ms, "at")
        else:
            self._on_every_slot(lambda cutoff_key: ("ZADD", cutoff_key, "GT", now_ms, "at"))

    def sweep(self, now_ms: int, idle_timeout_ms: int) -> int:
        """Drop the dead sessions of every key (a tombstone once its time is past);
        return how many. Each page of hashes that ``SCAN`` gives is one round trip,
        each hash one atomic script."""
        load = ("SCRIPT", "LOAD", self._sweep.source)
        dropped = 0
        for batch, hash_keys in self._hash_pages(SWEEP_PAGE):
            calls = [
                ("EVALSHA", self._sweep.sha, 2, k, self.cutoff_key(k), now_ms, idle_timeout_ms)
                for k in hash_keys
            ]
            dropped += sum(int(reply) for reply in batch((load, *calls))[1:])
        return dropped

    def stats(self) -> dict[str, int | str]:
        """What Redis holds under the prefix: ``keys`` (session hashes, one per session
        key) and ``records`` (their fields: sessions and tombstones), counted by ``SCAN``;
        ``used_memory`` of the whole server (summed over a cluster's primaries);
        ``revoked_everyone_before_ms`` once a cutoff is set."""
        primaries = self._primaries()
        versions: set[str] = set()
        used_memory = 0
        for batch in primaries:
            server, memory = batch((("INFO", "server"), ("INFO", "memory")))
            versions.add(_info(server).get("redis_version", "unknown"))
            used_memory += int(_info(memory).get("used_memory", 0))
        keys = sessions = 0
        for batch, hash_keys in self._hash_pages(STATS_PAGE):
            keys += len(hash_keys)
            sessions += sum(int(n) for n in batch([("HLEN", k) for k in hash_keys]))
        stats: dict[str, int | str] = {
            "backend": "redis",
            "redis_version": ", ".join(sorted(versions)),
            "used_memory": used_memory,
            "keys": keys,
            "records": sessions,
        }
        if self._pool is not None:
            cutoffs = [_cutoff_ms(self._command("ZSCORE", self._everyone_key, "at"))]
        else:
            stats["cluster_primaries"] = len(primaries)
            replies = self._on_every_slot(lambda cutoff_key: ("ZSCORE", cutoff_key, "at"))
            cutoffs = [_cutoff_ms(reply) for reply in replies]
        latest = max((c for c in cutoffs if c is not None), default=None)
        if latest is not None:
            stats["revoked_everyone_before_ms"] = latest
            if self._cluster:
                # Slots an interrupted revoke_everyone did not reach: run it again.
                behind = sum(1 for c in cutoffs if c is None or c < latest)
                stats["revoked_everyone_slots_behind"] = behind
        return stats

    def _on_every_slot(self, command: Callable[[str], tuple[Any, ...]]) -> builtins.list[Any]:
        """``command(cutoff_key)`` for the cutoff of every slot of a cluster, pipelined to
        the primary that owns the slot, one round trip per primary; the replies in slot
        order. Not redis-py's cluster pipeline: on a timeout it resends every command of
        the node one by one, each with its own timeout (thousands of them here)."""
        by_node: dict[str, tuple[Any, builtins.list[int]]] = {}
        try:
            for slot in range(SLOTS):
                node = self.client.nodes_manager.get_node_from_slot(slot)
                by_node.setdefault(node.name, (node, []))[1].append(slot)
        except (redis.RedisError, RedisClusterException) as exc:  # a slot no node serves
            raise _unavailable(exc) from exc
        replies: builtins.list[Any] = [None] * SLOTS
        for node, slots in by_node.values():
            commands = [command(f"{self._everyone_key}{{{self._slot_tags[s]}}}") for s in slots]
            for slot, reply in zip(slots, self._node_pipelined(node, commands), strict=True):
                replies[slot] = reply
        return replies

    def _primaries(self) -> builtins.list[_Batch]:
        """A batch runner for each node that holds data: the server, or each primary."""
        if self._pool is not None:
            return [self._pipelined]
        nodes = self._call_cluster(self.client.get_primaries)
        return [functools.partial(self._node_pipelined, node) for node in nodes]

    def _hash_pages(self, count: int) -> Iterator[tuple[_Batch, builtins.list[bytes]]]:
        """The session hashes under the prefix, a ``SCAN`` page at a time, each with the
        batch runner of its node (a hash may come twice, as ``SCAN`` allows)."""
        pattern = _glob_escape(self.key_prefix) + "{*"
        scan = ("MATCH", pattern, "COUNT", count, "TYPE", "hash")
        for batch in self._primaries():
            cursor = 0
            while True:
                next_cursor, hash_keys = batch((("SCAN", cursor, *scan),))[0]
                if hash_keys:
                    yield batch, list(hash_keys)
                cursor = int(next_cursor)
                if cursor == 0:
                    break

    def close(self) -> None:
        self.client.close()

"""The production store: Redis (>= 6.2) or Redis Cluster, through redis-py.

Layout: one hash per session key, ``<prefix>{<key digest>}``, one field per session id,
the value a msgpack record (see :mod:`pyramid_jeff.session`). The ``{...}`` hash tag
puts all sessions of a key in one cluster slot, so every operation is a single command
or a single-key Lua script: atomic, and valid on a cluster. Verifying a request is one
``HGET``, whatever the number of sessions under the key.

The hash's TTL is a backstop that Redis enforces on its own clock: it is never shorter
than the longest absolute lifetime in the hash. Session expiry itself is decided by the
application's clock when a session is read.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from . import deadline
from .errors import StoreUnavailable
from .session import Session, pack_record, unpack_record

log = logging.getLogger(__name__)

# Lua shared by the scripts. Record items: [1]=version [2]=created [3]=last_seen
# [4]=expires [5]=token digest [6]=session key. A record of any other shape (another
# application's data under the same prefix, a corrupt value) counts as dead instead of
# failing the script. Two keys whose digests collide share a hash: every script that
# acts on "the sessions of a key" compares the record's key with the key asked for, so
# one key's logins and revocations never end the other's sessions.
_LIVE = """
local function decode(value)
  local ok, r = pcall(cmsgpack.unpack, value)
  if ok and type(r) == 'table' and type(r[2]) == 'number' and type(r[3]) == 'number'
      and type(r[4]) == 'number' and type(r[5]) == 'string' and type(r[6]) == 'string' then
    return r
  end
  return nil
end
local function live(record, now, idle)
  if record == nil or record[4] <= now then return false end
  return idle <= 0 or record[3] + idle > now
end
"""

# KEYS[1]=hash; ARGV: session id, record, now, idle ms, max sessions, ttl ms,
# id to replace ('' for none), its token digest, the session key. Sessions of another
# key (a digest collision) are neither counted, pruned nor evicted.
_CREATE = (
    _LIVE
    + """
local hash, key = KEYS[1], ARGV[9]
local now, idle, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[7] ~= '' then
  local old = decode(redis.call('HGET', hash, ARGV[7]) or '')
  if old ~= nil and old[5] == ARGV[8] then redis.call('HDEL', hash, ARGV[7]) end
end
local evicted = 0
if redis.call('HLEN', hash) >= max then
  -- One pass: prune the dead, count the live and find the oldest (by creation time,
  -- then id). A login evicts one session; only a lowered cap needs more, and a sort.
  local fields = redis.call('HGETALL', hash)
  local count, oldest, oldest_id = 0, nil, nil
  for i = 1, #fields, 2 do
    local record = decode(fields[i + 1])
    if record == nil or record[6] == key then
      if live(record, now, idle) then
        count = count + 1
        local created, id = record[2], fields[i]
        if oldest == nil or created < oldest or (created == oldest and id < oldest_id) then
          oldest, oldest_id = created, id
        end
      else
        redis.call('HDEL', hash, fields[i])
      end
    end
  end
  if count == max then
    redis.call('HDEL', hash, oldest_id)
    evicted = 1
  elseif count > max then
    local alive = {}
    for i = 1, #fields, 2 do
      local record = decode(fields[i + 1])
      if record ~= nil and record[6] == key and live(record, now, idle) then
        alive[#alive + 1] = {record[2], fields[i]}
      end
    end
    table.sort(alive, function(a, b)
      if a[1] == b[1] then return a[2] < b[2] end
      return a[1] < b[1]
    end)
    for i = 1, count - max + 1 do
      redis.call('HDEL', hash, alive[i][2])
      evicted = evicted + 1
    end
  end
end
redis.call('HSET', hash, ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[6])
if redis.call('PTTL', hash) < ttl then redis.call('PEXPIRE', hash, ttl) end
return evicted
"""
)

# KEYS[1]=hash; ARGV: session id, last seen ms, min interval ms. Update-only: a revoked
# session stays dead; of concurrent refreshes of one session, only the first writes.
_TOUCH = (
    _LIVE
    + """
local record = decode(redis.call('HGET', KEYS[1], ARGV[1]) or '')
if record == nil then return 0 end
local seen = tonumber(ARGV[2])
if seen >= record[3] + math.max(tonumber(ARGV[3]), 1) then
  record[3] = seen
  redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack(record))
end
return 1
"""
)

# KEYS[1]=hash; ARGV: session id, now, idle ms, token digest, session key ('' for any),
# '1' to check the token digest (any digest, even an empty one, must then match).
# Returns 1 if a live session was ended.
_REVOKE = (
    _LIVE
    + """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local record = decode(value)
if ARGV[6] == '1' and (record == nil or record[5] ~= ARGV[4]) then return 0 end
if ARGV[5] ~= '' and record ~= nil and record[6] ~= ARGV[5] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if live(record, tonumber(ARGV[2]), tonumber(ARGV[3])) then return 1 end
return 0
"""
)

# KEYS[1]=hash; ARGV: id to keep ('' for none), now, idle ms, session key ('' for any).
# Returns live sessions ended. Unreadable records are nobody's: they go too.
_REVOKE_ALL = (
    _LIVE
    + """
local hash, keep, key = KEYS[1], ARGV[1], ARGV[4]
local now, idle = tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = redis.call('HGETALL', hash)
local ended = 0
for i = 1, #fields, 2 do
  if fields[i] ~= keep then
    local record = decode(fields[i + 1])
    if key == '' or record == nil or record[6] == key then
      if live(record, now, idle) then ended = ended + 1 end
      redis.call('HDEL', hash, fields[i])
    end
  end
end
return ended
"""
)


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
        self._scripts = (self._create, self._touch, self._revoke, self._revoke_all)
        self._script_loads = tuple(("SCRIPT", "LOAD", script.source) for script in self._scripts)
        # Whether this server has our scripts, as far as we know: the first script call
        # loads them all in the same round trip, and so does the call that finds them
        # gone (a restart, a failover), so NOSCRIPT never costs an EVAL per script.
        self._scripts_loaded = False
        # A plain client runs commands on a pooled connection directly: redis-py's
        # generic path (retry wrapper, observability hooks) costs more than the round
        # trip itself for a one-field read. A cluster client routes commands itself.
        self._pool = None if isinstance(client, redis.RedisCluster) else client.connection_pool
        # redis-py < 5.3 requires a command name (which its pools ignore); later ones warn on it.
        self._pass_command_name = self._pool is not None and _takes_command_name(self._pool)

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

    def _call_cluster(self, method: Any, *args: Any) -> Any:
        budget = deadline.current()
        if budget is not None and budget.remaining() <= 0:
            raise _budget_spent()
        try:
            if budget is None:
                return method(*args)
            with budget.spending():
                return method(*args)
        except (redis.RedisError, RedisClusterException) as exc:
            raise _unavailable(exc) from exc

    def _round_trip(self, commands: tuple[tuple[Any, ...], ...]) -> list[Any]:
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
                    connection.send_packed_command(connection.pack_commands(commands))
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

    def _command(self, *args: Any) -> Any:
        """Run one command: one round trip, no retry."""
        if self._pool is None:
            return self._call_cluster(self.client.execute_command, *args)
        reply = self._round_trip((args,))[0]
        if isinstance(reply, redis.ResponseError):
            raise _unavailable(reply) from reply
        return reply

    def _run(self, script: _Script, hash_key: str, *args: Any) -> Any:
        call = ("EVALSHA", script.sha, 1, hash_key, *args)
        if self._pool is None:  # a cluster: the node that owns the key
            try:
                return self._command(*call)
            except StoreUnavailable as exc:
                if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
                    raise
            # Not in this node's script cache (a restart, a failover): EVAL caches it.
            return self._command("EVAL", script.source, 1, hash_key, *args)
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
    ) -> int:
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
        ]
        return int(self._run(self._create, self.hash_key(key_digest), *args))

    def get(self, key_digest: str, session_id: str) -> Session | None:
        value = self._command("HGET", self.hash_key(key_digest), session_id)
        if value is None:
            return None
        return unpack_record(session_id, value)

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        hash_key = self.hash_key(key_digest)
        return bool(self._run(self._touch, hash_key, session_id, last_seen_ms, min_interval_ms))

    def list(self, key_digest: str) -> list[Session]:
        reply = self._command("HGETALL", self.hash_key(key_digest))
        # A flat list on a pooled connection; a cluster client has already made a dict.
        pairs = reply.items() if isinstance(reply, dict) else zip(*[iter(reply)] * 2, strict=True)
        sessions = []
        for session_id, value in pairs:
            try:
                sessions.append(unpack_record(session_id.decode("ascii"), value))
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
    ) -> bool:
        """End one session; with ``key``, only if it is a session of that key (the
        hash may hold another key's sessions if the digests of two keys collide)."""
        hash_key = self.hash_key(key_digest)
        check_token = "0" if token_digest is None else "1"
        args = (session_id, now_ms, idle_timeout_ms, token_digest or b"", key or "", check_token)
        return bool(self._run(self._revoke, hash_key, *args))

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> int:
        """End every session but ``keep``; with ``key``, only sessions of that key."""
        hash_key = self.hash_key(key_digest)
        args = (keep or "", now_ms, idle_timeout_ms, key or "")
        return int(self._run(self._revoke_all, hash_key, *args))

    def close(self) -> None:
        self.client.close()

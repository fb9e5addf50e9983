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

from .errors import StoreUnavailable
from .session import Session, pack_record, unpack_record

log = logging.getLogger(__name__)

# Lua shared by the scripts. Record items: [1]=version [2]=created [3]=last_seen
# [4]=expires [5]=token digest. A record of any other shape (another application's data
# under the same prefix, a corrupt value) counts as dead instead of failing the script.
_LIVE = """
local function decode(value)
  local ok, r = pcall(cmsgpack.unpack, value)
  if ok and type(r) == 'table' and type(r[2]) == 'number' and type(r[3]) == 'number'
      and type(r[4]) == 'number' and type(r[5]) == 'string' then
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
# id to replace ('' for none), its token digest.
_CREATE = (
    _LIVE
    + """
local hash = KEYS[1]
local now, idle, max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if ARGV[7] ~= '' then
  local old = decode(redis.call('HGET', hash, ARGV[7]) or '')
  if old ~= nil and old[5] == ARGV[8] then redis.call('HDEL', hash, ARGV[7]) end
end
local evicted = 0
if redis.call('HLEN', hash) >= max then
  local fields = redis.call('HGETALL', hash)
  local alive = {}
  for i = 1, #fields, 2 do
    local record = decode(fields[i + 1])
    if live(record, now, idle) then
      alive[#alive + 1] = {record[2], fields[i]}
    else
      redis.call('HDEL', hash, fields[i])
    end
  end
  if #alive >= max then
    table.sort(alive, function(a, b)
      if a[1] == b[1] then return a[2] < b[2] end
      return a[1] < b[1]
    end)
    for i = 1, #alive - max + 1 do
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

# KEYS[1]=hash; ARGV: session id, now, idle ms, token digest ('' for any). Returns 1 if
# a live session was ended.
_REVOKE = (
    _LIVE
    + """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local record = decode(value)
if ARGV[4] ~= '' and (record == nil or record[5] ~= ARGV[4]) then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
if live(record, tonumber(ARGV[2]), tonumber(ARGV[3])) then return 1 end
return 0
"""
)

# KEYS[1]=hash; ARGV: id to keep ('' for none), now, idle ms. Returns live sessions ended.
_REVOKE_ALL = (
    _LIVE
    + """
local hash, keep = KEYS[1], ARGV[1]
local now, idle = tonumber(ARGV[2]), tonumber(ARGV[3])
local fields = redis.call('HGETALL', hash)
local ended = 0
for i = 1, #fields, 2 do
  if fields[i] ~= keep then
    if live(decode(fields[i + 1]), now, idle) then ended = ended + 1 end
    redis.call('HDEL', hash, fields[i])
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


class _Script:
    """A Lua script run by its SHA1, loaded on demand (after a Redis restart too)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()


class RedisStore:
    """Sessions in Redis. ``client`` is a ``redis.Redis`` or ``redis.RedisCluster``."""

    def __init__(self, client: Any, *, key_prefix: str = "jeff:") -> None:
        if "{" in key_prefix or "}" in key_prefix:
            raise ValueError("key_prefix must not contain '{' or '}' (they pick the hash slot)")
        self.client = client
        self.key_prefix = key_prefix
        self._create = _Script(_CREATE)
        self._touch = _Script(_TOUCH)
        self._revoke = _Script(_REVOKE)
        self._revoke_all = _Script(_REVOKE_ALL)
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

        Every command fails within ``socket_timeout`` (connecting: within
        ``socket_connect_timeout``); a request waits at most ``socket_timeout`` for a
        free connection when all ``max_connections`` are busy. redis-py checks the
        process id of its pool, so a store created before a fork is safe in workers.
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
            )
        else:
            pool = redis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout,
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_connect_timeout,
                retry=no_retry,
            )
            client = redis.Redis(connection_pool=pool)
        return cls(client, key_prefix=key_prefix)

    def load_scripts(self) -> None:
        """Load the Lua scripts now (optional: the first call of each loads it anyway)."""
        for script in (self._create, self._touch, self._revoke, self._revoke_all):
            if self._pool is None:  # a cluster: every primary needs it
                self._call_cluster(self.client.script_load, script.source)
            else:
                self._command("SCRIPT", "LOAD", script.source)

    def hash_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}{{{key_digest}}}"

    def _call_cluster(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except (redis.RedisError, RedisClusterException) as exc:
            raise _unavailable(exc) from exc

    def _command(self, *args: Any) -> Any:
        """Run one command: one round trip, no retry."""
        pool = self._pool
        if pool is None:
            return self._call_cluster(self.client.execute_command, *args)
        try:
            if self._pass_command_name:
                connection = pool.get_connection(args[0])
            else:
                connection = pool.get_connection()
            try:
                connection.send_command(*args)
                return connection.read_response()
            except redis.ResponseError:
                raise  # an error reply was read whole: the connection is fine
            except BaseException:
                # The reply may still be on its way: never hand this socket out again.
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        except redis.RedisError as exc:
            raise _unavailable(exc) from exc

    def _run(self, script: _Script, hash_key: str, *args: Any) -> Any:
        try:
            return self._command("EVALSHA", script.sha, 1, hash_key, *args)
        except StoreUnavailable as exc:
            if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
                raise
        # Not in this server's script cache (a restart, a failover): EVAL caches it.
        return self._command("EVAL", script.source, 1, hash_key, *args)

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
    ) -> bool:
        hash_key = self.hash_key(key_digest)
        args = (session_id, now_ms, idle_timeout_ms, token_digest or b"")
        return bool(self._run(self._revoke, hash_key, *args))

    def revoke_all(
        self, key_digest: str, *, keep: str | None, now_ms: int, idle_timeout_ms: int
    ) -> int:
        hash_key = self.hash_key(key_digest)
        return int(self._run(self._revoke_all, hash_key, keep or "", now_ms, idle_timeout_ms))

    def close(self) -> None:
        self.client.close()

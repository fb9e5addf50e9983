"""The Lua scripts of :class:`~pyramid_jeff.stores.redis.RedisStore`: every change to a
key's sessions is one script, atomic inside Redis.

Round trips and commands (a script's commands run inside Redis, in one step):

- ``get``, the verify read of every authenticated request: one round trip whatever the
  number of sessions under the key. On a single Redis, ``HGET`` and ``ZSCORE``
  pipelined in one write (they cost the server about a microsecond together; a script
  doing the same, about eight). On a cluster, one ``EVAL`` of :data:`GET` (cheaper than
  redis-py's cluster pipeline; ``EVAL``, unlike ``EVALSHA``, can never answer
  ``NOSCRIPT`` and need a second round trip).
- ``list``: the same, with ``HGETALL``.
- ``create``: :data:`CREATE` (``ZSCORE``, ``HGET`` of the replaced session, ``HLEN``; at
  the cap ``HGETALL``, ``HDEL`` of the dead, ``HSET`` of each evicted one's tombstone;
  ``HSET``, ``PTTL``, ``PEXPIRE``).
- ``touch``: :data:`TOUCH` (``HGET``, ``ZSCORE``, an ``HSET`` when due).
- ``revoke``: :data:`REVOKE` (``HGET``, ``ZSCORE``, then ``HDEL``, or ``HSET`` of the
  tombstone).
- ``revoke_all``: :data:`REVOKE_ALL` (``ZSCORE``, ``HGETALL``, an ``HSET`` or ``HDEL``
  each).
- ``revoke_everyone``: one ``ZADD GT`` (on a cluster, one per slot: see
  :mod:`.cluster`); ``sweep`` and ``stats``: see :mod:`.operators`.

These scripts run by ``EVALSHA`` (:meth:`.commands.Commands.run_script`): on a single
Redis the first call loads them all in the same round trip (and so does the call that
finds them gone after a restart); on a cluster, a node without them gets an ``EVAL``.
"""

from __future__ import annotations

import hashlib

from ...session import TOMBSTONE_MS

# Lua shared by the scripts. Record items: [1]=version [2]=created [3]=last_seen
# [4]=expires [5]=token digest [6]=session key ... [9]=meta (never decoded: an opaque
# string here) [10]=the end reason of a tombstone. A record of any other shape (another
# application's data under the same prefix, a corrupt value) counts as dead instead of
# failing the script. Two keys whose digests collide share a hash: every script that
# acts on "the sessions of a key" compares the record's key with the key asked for, so
# one key's logins and revocations never end the other's sessions.
PRELUDE = f"""
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
CREATE = (
    PRELUDE
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
TOUCH = (
    PRELUDE
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
REVOKE = (
    PRELUDE
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
REVOKE_ALL = (
    PRELUDE
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
SWEEP = (
    PRELUDE
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

# The verify read on a cluster (see above): the session and its slot's cutoff, in one
# command. ARGV: session id. LIST: the same with all the key's sessions.
GET = "return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('ZSCORE', KEYS[2], 'at')}"
LIST = "return {redis.call('HGETALL', KEYS[1]), redis.call('ZSCORE', KEYS[2], 'at')}"


class Script:
    """A Lua script run by its SHA1, loaded on demand (after a Redis restart too)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()


class StoreScripts:
    """The scripts of one store. Those requests run are loaded together
    (:meth:`.commands.Commands.run_script`); ``sweep``, an operator's, by each sweep."""

    def __init__(self) -> None:
        self.create = Script(CREATE)
        self.touch = Script(TOUCH)
        self.revoke = Script(REVOKE)
        self.revoke_all = Script(REVOKE_ALL)
        self.sweep = Script(SWEEP)
        self.of_requests = (self.create, self.touch, self.revoke, self.revoke_all)

"""The Redis store: one hash per session key, one field per session (see the package)."""

from __future__ import annotations

import builtins
import logging
from typing import Any

from ...errors import TooManySessions
from ...session import Session, pack_record, unpack_record
from . import operators
from .budget import make_client
from .cluster import key_slot, on_every_slot, slot_tags
from .commands import Commands, text
from .operators import cutoff_ms
from .scripts import GET, LIST, Script, StoreScripts

log = logging.getLogger(__name__)


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
        self.scripts = StoreScripts()
        self.commands = Commands(client, self.scripts.of_requests)
        self.everyone_key = f"{key_prefix}everyone"
        # The cutoff's copy of each slot on a cluster: worked out now, not by a request.
        self._slot_tags = slot_tags() if self.commands.pool is None else ()

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
        client = make_client(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            cluster=cluster,
        )
        return cls(client, key_prefix=key_prefix, request_budget=socket_timeout)

    def load_scripts(self) -> None:
        """Load the Lua scripts now (optional: the first script call loads them anyway)."""
        self.commands.load_scripts()

    def hash_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}{{{key_digest}}}"

    def cutoff_key(self, hash_key: str | bytes) -> str:
        """The key of the cutoff that the sessions in ``hash_key`` obey: one for a
        single Redis, the copy of the hash's own slot on a cluster."""
        if not self._slot_tags:
            return self.everyone_key
        name = hash_key.encode("utf-8") if isinstance(hash_key, str) else hash_key
        return f"{self.everyone_key}{{{self._slot_tags[key_slot(name)]}}}"

    def _read(self, command: tuple[Any, ...], script: str, hash_key: str) -> tuple[Any, Any]:
        """``command`` on the session hash, and the cutoff of its slot: one round trip
        (see :mod:`.scripts`)."""
        cutoff_key = self.cutoff_key(hash_key)
        if self.commands.pool is None:
            args = ("EVAL", script, 2, hash_key, cutoff_key, *command[2:])
            value, cutoff = self.commands.command(*args)
        else:
            value, cutoff = self.commands.pipelined((command, ("ZSCORE", cutoff_key, "at")))
        return value, cutoff

    def _run(self, script: Script, hash_key: str, *args: Any) -> Any:
        """Run one of our scripts on a session hash and the cutoff of its slot."""
        return self.commands.run_script(script, (hash_key, self.cutoff_key(hash_key)), *args)

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
        reply = self._run(self.scripts.create, self.hash_key(key_digest), *args)
        if isinstance(reply, int):  # the key is full of live sessions: nothing written
            raise TooManySessions()
        return [text(session_id) for session_id in reply]

    def get(self, key_digest: str, session_id: str) -> Session | None:
        hash_key = self.hash_key(key_digest)
        value, cutoff = self._read(("HGET", hash_key, session_id), GET, hash_key)
        if value is None:
            return None
        return _cut(unpack_record(session_id, value), cutoff_ms(cutoff))

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        hash_key = self.hash_key(key_digest)
        args = (session_id, last_seen_ms, min_interval_ms)
        return bool(self._run(self.scripts.touch, hash_key, *args))

    def list(self, key_digest: str) -> list[Session]:
        hash_key = self.hash_key(key_digest)
        fields, cutoff_reply = self._read(("HGETALL", hash_key), LIST, hash_key)
        cutoff = cutoff_ms(cutoff_reply)
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
        return bool(self._run(self.scripts.revoke, hash_key, *args, "1" if tombstone else "0"))

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
        return [
            text(session_id) for session_id in self._run(self.scripts.revoke_all, hash_key, *args)
        ]

    def revoke_everyone(self, *, now_ms: int) -> None:
        """Sessions created at or before ``now_ms`` are dead; ``ZADD GT`` keeps the later
        cutoff. On a cluster, one write per slot (see :mod:`.cluster`)."""
        if self.commands.pool is not None:
            self.commands.command("ZADD", self.everyone_key, "GT", now_ms, "at")
        else:
            on_every_slot(
                self.commands,
                self.everyone_key,
                lambda cutoff_key: ("ZADD", cutoff_key, "GT", now_ms, "at"),
            )

    def sweep(self, now_ms: int, idle_timeout_ms: int) -> int:
        """Drop the dead sessions of every key; return how many (see :mod:`.operators`)."""
        return operators.sweep(self, now_ms, idle_timeout_ms)

    def stats(self) -> dict[str, int | str]:
        """What Redis holds under the prefix (see :func:`.operators.stats`)."""
        return operators.stats(self)

    def close(self) -> None:
        self.client.close()


def _cut(session: Session, cutoff: int | None) -> Session:
    """``session`` as a ``"revoked"`` tombstone when the cutoff ended it (kept as if
    written at the cutoff, as the scripts judge it)."""
    if cutoff is not None and session.ended is None and session.created_ms <= cutoff:
        return session.tombstone("revoked", cutoff)
    return session

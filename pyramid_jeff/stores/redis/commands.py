"""How :class:`~pyramid_jeff.stores.redis.RedisStore` talks to Redis: one round trip per
call, within the request's store budget, no retries; an error is
:class:`~pyramid_jeff.StoreUnavailable`, never "no session"."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from ... import deadline
from ...errors import StoreUnavailable
from .budget import BudgetedConnection
from .scripts import Script


def takes_command_name(pool: Any) -> bool:
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


def unavailable(exc: Exception) -> StoreUnavailable:
    # Connection refused, timeouts, READONLY replicas, LOADING, OOM: the store cannot
    # answer now. Never treated as "no session".
    return StoreUnavailable(f"redis: {type(exc).__name__}: {exc}")


def budget_spent() -> StoreUnavailable:
    # This request already waited jeff.redis.socket_timeout on the store in total.
    return StoreUnavailable("redis: the request's store budget is spent")


class Commands:
    """Commands to a ``redis.Redis`` or ``redis.RedisCluster``, and our scripts."""

    def __init__(self, client: Any, scripts: Sequence[Script]) -> None:
        self.client = client
        # A plain client runs commands on a pooled connection directly: redis-py's
        # generic path (retry wrapper, observability hooks) costs more than the round
        # trip itself for a one-field read. A cluster client routes commands itself.
        self.pool = None if isinstance(client, redis.RedisCluster) else client.connection_pool
        # redis-py < 5.3 requires a command name (which its pools ignore); later ones warn on it.
        self.pass_command_name = self.pool is not None and takes_command_name(self.pool)
        self._scripts = tuple(scripts)
        self._script_loads = tuple(("SCRIPT", "LOAD", script.source) for script in scripts)
        # Whether this server has our scripts, as far as we know: the first script call
        # loads them all in the same round trip, and so does the call that finds them
        # gone (a restart, a failover), so NOSCRIPT never costs an EVAL per script.
        self.scripts_loaded = False

    def load_scripts(self) -> None:
        """Load the Lua scripts now (optional: the first script call loads them anyway)."""
        if self.pool is None:  # a cluster: every primary needs them
            for script in self._scripts:
                self.call_cluster(self.client.script_load, script.source)
        else:
            for reply in self.round_trip(self._script_loads):
                if isinstance(reply, redis.ResponseError):
                    raise unavailable(reply) from reply
        self.scripts_loaded = True

    def call_cluster(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call redis-py (a cluster client, or one node's), within the budget."""
        budget = deadline.current()
        if budget is not None and budget.remaining() <= 0:
            raise budget_spent()
        try:
            if budget is None:
                return method(*args, **kwargs)
            with budget.spending():
                return method(*args, **kwargs)
        except (redis.RedisError, RedisClusterException) as exc:
            raise unavailable(exc) from exc

    def round_trip(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` together and read their replies: one round trip, no retry.

        An error reply (read whole: the connection stays usable) is returned in its
        place as its ``ResponseError``; anything else that fails is ``StoreUnavailable``.
        """
        pool = self.pool
        assert pool is not None
        budget = deadline.current()
        if budget is not None:
            if budget.remaining() <= 0:
                raise budget_spent()
            budget.start()
        try:
            if self.pass_command_name:
                connection = pool.get_connection(commands[0][0])
            else:
                connection = pool.get_connection()
            try:
                if budget is not None and not isinstance(connection, BudgetedConnection):
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
                if budget is not None and not isinstance(connection, BudgetedConnection):
                    connection._sock.settimeout(connection.socket_timeout)
                return replies
            except BaseException:
                # The reply may still be on its way: never hand this socket out again.
                connection.disconnect()
                raise
            finally:
                pool.release(connection)
        except redis.RedisError as exc:
            raise unavailable(exc) from exc
        finally:
            if budget is not None:
                budget.stop()

    def pipelined(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands on a pooled connection in one round trip; an error reply fails it."""
        replies = self.round_trip(commands)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise unavailable(reply) from reply
        return replies

    def node_pipelined(self, node: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Commands to one cluster node in one round trip; an error reply fails it."""
        pipeline = self.client.get_redis_connection(node).pipeline(transaction=False)
        for command in commands:
            pipeline.execute_command(*command)
        replies: list[Any] = self.call_cluster(pipeline.execute, raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise unavailable(reply) from reply
        return replies

    def command(self, *args: Any) -> Any:
        """Run one command: one round trip, no retry."""
        if self.pool is None:
            return self.call_cluster(self.client.execute_command, *args)
        return self.pipelined((args,))[0]

    def run_script(self, script: Script, keys: tuple[str, str], *args: Any) -> Any:
        """Run ``script`` on ``keys`` (a session hash and the cutoff of its slot)."""
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        if self.pool is None:  # a cluster: the node that owns the key
            try:
                return self.command(*call)
            except StoreUnavailable as exc:
                if not isinstance(exc.__cause__, redis.exceptions.NoScriptError):
                    raise
            # Not in this node's script cache (a restart, a failover): EVAL caches it.
            return self.command("EVAL", script.source, len(keys), *keys, *args)
        if self.scripts_loaded:
            reply = self.round_trip((call,))[0]
            if isinstance(reply, redis.exceptions.NoScriptError):
                self.scripts_loaded = False  # a restart, a failover: load them all again
        if not self.scripts_loaded:
            # SCRIPT LOAD of every script, then the call: still one round trip.
            *loads, reply = self.round_trip((*self._script_loads, call))
            if not any(isinstance(load, redis.ResponseError) for load in loads):
                self.scripts_loaded = True
        if isinstance(reply, redis.ResponseError):
            raise unavailable(reply) from reply
        return reply


def text(value: bytes | str) -> str:
    """A reply (a session id, ``INFO`` text) as ``str``."""
    return value if isinstance(value, str) else value.decode("ascii", "backslashreplace")

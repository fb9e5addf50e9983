"""The floor's stores: a dict, and three Redis clients that differ in their command path
only (redis-py, a pooled connection as ``RedisStore`` uses one, a raw socket).

Each offers ``get(key)`` and ``set(key, value, px=ms)``, all the floor policy asks.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

REDIS_TIMEOUT = 1.0  # every Redis client gets jeff's default timeouts, so none is favoured


class MemoryKV(dict[bytes, bytes]):
    """The floor's store in a dict (the policy checks expiry): the in-memory floor."""

    def set(self, key: bytes, value: bytes, px: int) -> None:
        self[key] = value


class RawRESP:
    """A lean RESP client, one connection per thread: one ``sendall``, buffered reads."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.local = threading.local()

    def command(self, *args: Any) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            sock = socket.create_connection(self.address, timeout=REDIS_TIMEOUT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self.local.conn = (sock, sock.makefile("rb"))
        words = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        packet = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        conn[0].sendall(packet)
        line = conn[1].readline()
        if line[:1] == b"$":
            size = int(line[1:-2])
            return None if size < 0 else conn[1].read(size + 2)[:-2]
        if line[:1] != b"+":
            raise redis.ResponseError(line.decode(errors="replace").strip())
        return line[1:-2]

    def get(self, key: bytes) -> bytes | None:
        return self.command(b"GET", key)  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes, px: int) -> Any:
        return self.command(b"SET", key, value, b"PX", px)


class PooledKV:
    """Each command on a connection checked out of a ``BlockingConnectionPool`` with jeff's
    settings, through redis-py's public connection API (no ``Redis.execute_command``):
    the command path ``RedisStore`` takes, for the like-for-like floor."""

    def __init__(self, url: str) -> None:
        self.pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=50, timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 0),
        )  # fmt: skip

    def command(self, *args: Any) -> Any:
        connection = self.pool.get_connection()
        try:
            connection.send_command(*args)
            return connection.read_response()
        finally:
            self.pool.release(connection)

    def get(self, key: bytes) -> bytes | None:
        return self.command("GET", key)  # type: ignore[no-any-return]

    def set(self, key: bytes, value: bytes, px: int) -> Any:
        return self.command("SET", key, value, "PX", px)


def redis_client(url: str, parser: str = "default") -> redis.Redis:
    """redis-py with jeff's timeouts and no retries; ``parser`` forces a reply parser."""
    from redis._parsers import _HiredisParser, _RESP2Parser
    from redis.utils import HIREDIS_AVAILABLE

    kwargs: dict[str, Any] = {"socket_timeout": REDIS_TIMEOUT, "max_connections": 50}
    kwargs["socket_connect_timeout"] = REDIS_TIMEOUT
    if parser == "hiredis" and not HIREDIS_AVAILABLE:
        raise RuntimeError("hiredis is not installed (pip install -r benchmarks/requirements.txt)")
    if parser != "default":
        kwargs["parser_class"] = _RESP2Parser if parser == "python" else _HiredisParser
    return redis.Redis(connection_pool=redis.ConnectionPool.from_url(url, **kwargs))

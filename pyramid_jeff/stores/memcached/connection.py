"""The connections to one memcached server: a bounded pool of pymemcache clients whose
sockets wait at most what the request's store budget has left."""

from __future__ import annotations

import os
import socket
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError

from ... import deadline
from ...errors import StoreUnavailable

T = TypeVar("T")


def _unavailable(what: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"memcached: {what}: {type(exc).__name__}: {exc}")


class _BudgetedSocket(socket.socket):
    """The sockets of our pymemcache clients: inside a request, every wait (connect,
    each send, each receive) gets at most what the request's store budget has left;
    outside one, the timeout pymemcache set (the configured one). One ``settimeout``
    per wait inside a request, none outside."""

    _jeff_timeout: float | None = None
    _jeff_armed = False

    def settimeout(self, value: float | None) -> None:
        self._jeff_timeout = value
        self._jeff_armed = False
        super().settimeout(value)

    def _arm(self) -> None:
        budget = deadline.current()
        if budget is not None:
            super().settimeout(budget.wait(self._jeff_timeout))
            self._jeff_armed = True
        elif self._jeff_armed:
            super().settimeout(self._jeff_timeout)
            self._jeff_armed = False

    def connect(self, address: Any) -> None:
        self._arm()
        super().connect(address)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(bufsize, flags)


# What pymemcache's Client uses as its socket module: the standard one, with our socket.
_SOCKET_MODULE = types.ModuleType("pyramid_jeff._memcached_socket")
_SOCKET_MODULE.__dict__.update({k: v for k, v in vars(socket).items() if not k.startswith("__")})
_SOCKET_MODULE.socket = _BudgetedSocket  # type: ignore[attr-defined]


class Node:
    """One memcached server: a bounded pool of pymemcache clients (one socket each).

    A call waits at most the socket timeout (inside a request: the budget left) for a
    free connection. A client whose call failed is closed, never reused: its reply may
    still be on its way. No retry anywhere.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
    ) -> None:
        self.address = (host, port)
        self.name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._free: list[Any] = []
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def _client(self) -> Any:
        return Client(
            self.address,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            no_delay=True,
            socket_module=_SOCKET_MODULE,
            default_noreply=False,
        )

    def run(self, what: str, op: Callable[[Any], T]) -> T:
        """Run ``op(client)`` on a pooled client: one call, one round trip, no retry."""
        budget = deadline.current()
        if budget is None:
            return self._run(what, op, self.timeout)
        if budget.remaining() <= 0:
            raise StoreUnavailable("memcached: the request's store budget is spent")
        with budget.spending():
            return self._run(what, op, budget.wait(self.timeout))

    def _run(self, what: str, op: Callable[[Any], T], wait: float | None) -> T:
        if self._pid != os.getpid():  # a forked worker: never share the parent's sockets
            with self._lock:
                if self._pid != os.getpid():
                    self._reset()
        slots = self._slots
        if not slots.acquire(timeout=wait):
            raise StoreUnavailable(
                f"memcached: {what}: no free connection to {self.name} "
                f"({self.max_connections} in use)"
            )
        try:
            with self._lock:
                client = self._free.pop() if self._free else None
            if client is None:
                client = self._client()
            try:
                result = op(client)
            except (MemcacheError, OSError, ValueError) as exc:
                client.close()
                raise _unavailable(f"{what} on {self.name}", exc) from exc
            except BaseException:
                client.close()
                raise
            with self._lock:
                self._free.append(client)
            return result
        finally:
            slots.release()

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
        for client in free:
            client.close()

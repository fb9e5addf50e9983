"""Every wait on Redis within the request's store budget (:mod:`pyramid_jeff.deadline`):
redis-py's connection and pool classes, extended, and the client built from them."""

from __future__ import annotations

import inspect
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ... import deadline


class BudgetedConnection:
    """Mixed into redis-py's connection classes by :func:`make_client`: inside a
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


def budgeted(connection_class: type) -> type:
    if issubclass(connection_class, BudgetedConnection):
        return connection_class
    budgeted = _BUDGETED_CLASSES.get(connection_class)
    if budgeted is None:
        name = f"Budgeted{connection_class.__name__}"
        budgeted = type(name, (BudgetedConnection, connection_class), {})
        _BUDGETED_CLASSES[connection_class] = budgeted
    return budgeted


class BudgetedPool(redis.BlockingConnectionPool):
    """Inside a request, a wait for a free connection gets at most what is left."""

    @property
    def timeout(self) -> float | None:
        budget = deadline.current()
        configured: float | None = self._jeff_timeout
        return configured if budget is None else budget.wait(configured)

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._jeff_timeout = value


def handshake_options() -> dict[str, Any]:
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


def make_client(
    url: str,
    *,
    socket_timeout: float,
    socket_connect_timeout: float,
    max_connections: int,
    cluster: bool,
) -> Any:
    """A ``redis.Redis`` (or ``redis.RedisCluster``) with bounded waits and no retries
    (see :meth:`~pyramid_jeff.stores.redis.RedisStore.from_url`)."""
    no_retry = Retry(NoBackoff(), 0)
    if cluster:
        return redis.RedisCluster.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            retry=no_retry,
            **handshake_options(),
        )
    pool = BudgetedPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_timeout,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        retry=no_retry,
        **handshake_options(),
    )
    pool.connection_class = budgeted(pool.connection_class)
    return redis.Redis(connection_pool=pool)

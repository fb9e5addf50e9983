"""The Redis store on every redis-py from the declared floor (5.0) up.

redis-py before 5.3 requires a command name in ``ConnectionPool.get_connection``; from 5.3 on
the argument is optional and passing it is deprecated (a warning at each call). The store
reads the signature once and calls it the way the installed redis-py wants. ``make
test-floors`` runs this file on redis-py 5.0, ``make test`` on the newest.
"""

from __future__ import annotations

import functools
import warnings
from importlib.metadata import version
from typing import Any

import pytest
import redis

from pyramid_jeff import RedisStore, SessionManager
from pyramid_jeff.stores.redis.commands import takes_command_name

pytestmark = pytest.mark.usefixtures("redis_client")


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def test_the_signature_of_the_installed_redis_py_is_read_right() -> None:
    for pool_class in (redis.ConnectionPool, redis.BlockingConnectionPool):
        pool = pool_class()
        try:
            assert takes_command_name(pool) == (_release(version("redis")) < (5, 3))
        finally:
            pool.disconnect()


def _deprecated(func: Any) -> Any:
    """What redis-py >= 5.3 wraps get_connection in: a warning whenever an argument is given."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 1 or kwargs:
            warnings.warn(
                "Use get_connection() without args instead", DeprecationWarning, stacklevel=2
            )
        return func(*args, **kwargs)

    return wrapper


class _OldPool:  # redis-py 5.0 .. 5.2
    def get_connection(self, command_name: str, *keys: Any, **options: Any) -> None:
        raise NotImplementedError


class _NewPool:  # redis-py 5.3 .. 8.x
    @_deprecated
    def get_connection(self, command_name: str | None = None, *keys: Any, **options: Any) -> None:
        raise NotImplementedError


class _NoArgPool:  # a later redis-py that drops the argument altogether
    def get_connection(self) -> None:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("pool", "expected"), [(_OldPool(), True), (_NewPool(), False), (_NoArgPool(), False)]
)
def test_each_calling_convention_is_recognised(pool: object, expected: bool) -> None:
    assert takes_command_name(pool) is expected


@pytest.mark.parametrize("blocking", [True, False])
def test_a_login_and_its_requests_work_without_deprecation_warnings(
    redis_url: str, blocking: bool
) -> None:
    """Every store call on the installed redis-py: no TypeError, no DeprecationWarning."""
    if blocking:
        store = RedisStore.from_url(redis_url)
    else:
        store = RedisStore(redis.Redis.from_url(redis_url))
    manager = SessionManager(store)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            store.load_scripts()
            session, credential = manager.create("alice@example.com")
            assert manager.verify(credential) is not None
            assert [s.id for s in manager.sessions("alice@example.com")] == [session.id]
            assert manager.revoke("alice@example.com", session.id)
            assert manager.verify(credential) is None
    finally:
        store.close()

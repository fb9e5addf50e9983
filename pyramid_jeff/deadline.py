"""One store budget per request: all store waits of a request share it.

Every socket wait of the Redis store (a free pooled connection, connecting, sending a
command, reading its reply) gets at most the time the request has left. The clock runs
only while the store waits: the application's own work between two store calls costs
nothing from the budget, so a request spends at most its budget on the store in total,
however many round trips it makes. The tween opens the budget around the rest of the
request (:func:`store_budget`); outside a request (scripts, tests, response callbacks)
there is none, and each command has its own timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

# The smallest wait ever given to a socket: 0 would make it non-blocking, not bounded.
MIN_WAIT = 0.001


class Budget:
    """Seconds a request may still spend waiting on the store."""

    __slots__ = ("_ends", "left")

    def __init__(self, seconds: float) -> None:
        self.left = seconds
        self._ends: float | None = None  # while a store call runs: when the budget is spent

    def remaining(self) -> float:
        """Seconds left now (running down while a store call waits)."""
        if self._ends is None:
            return self.left
        return max(self._ends - time.monotonic(), 0.0)

    def wait(self, limit: float | None) -> float | None:
        """The wait to give one socket operation whose own timeout is ``limit``."""
        left = max(self.remaining(), MIN_WAIT)
        return left if limit is None else min(limit, left)

    def start(self) -> None:
        """A store call begins: the clock runs until :meth:`stop`."""
        self._ends = time.monotonic() + self.left

    def stop(self) -> None:
        if self._ends is not None:
            self.left = max(self._ends - time.monotonic(), 0.0)
            self._ends = None

    @contextmanager
    def spending(self) -> Iterator[None]:
        """Run one store call against the budget: the clock runs inside."""
        self.start()
        try:
            yield
        finally:
            self.stop()


def request_budget(store: Any) -> float | None:
    """Seconds one request may wait on ``store`` in total: its ``request_budget``
    attribute (``None``, or none at all: no budget, as for the memory store)."""
    seconds = getattr(store, "request_budget", None)
    return float(seconds) if isinstance(seconds, (int, float)) else None


_current: ContextVar[Budget | None] = ContextVar("pyramid_jeff_store_budget", default=None)


def current() -> Budget | None:
    """The budget of the request being handled, or ``None`` outside a request."""
    return _current.get()


@contextmanager
def store_budget(seconds: float) -> Iterator[Budget]:
    """Give the code inside (one request) ``seconds`` of store waits in total."""
    budget = Budget(seconds)
    token = activate(budget)
    try:
        yield budget
    finally:
        deactivate(token)


def activate(budget: Budget) -> Token[Budget | None]:
    """Make ``budget`` the request's (the tween does, around the request); undo with
    :func:`deactivate`. Cheaper than :func:`store_budget` on the hot path."""
    return _current.set(budget)


def deactivate(token: Token[Budget | None]) -> None:
    _current.reset(token)

"""The client-side bound of a call: a watchdog thread cuts the connection of a call that has
not finished in time (it shuts the socket down; SQLite: ``interrupt()``), so a frozen
network or server, which no server-side timeout can end, costs at most the call's bound;
the cut connection is then discarded."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Outside a request, the watchdog fires this long after ``timeout``, so that the server's
# own timeouts (a clean error, a connection that stays usable) normally win.
WATCHDOG_GRACE = 0.25


class _Watch:
    __slots__ = ("cut", "deadline", "done", "fired")

    def __init__(self, deadline: float, cut: Callable[[], None]) -> None:
        self.deadline = deadline
        self.cut = cut
        self.done = False
        self.fired = False


class _Watchdog:
    """One thread per process that cuts the connection of a call past its deadline.

    Arming is a heap push under a lock; a disarmed watch stays in the heap until its
    deadline (the thread is woken only by a deadline earlier than the one it sleeps on).
    The cut runs under the lock, and disarming takes the lock: once :meth:`disarm` has
    returned, the connection is never cut (it may go back to the pool safely).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._pid: int | None = None

    def arm(self, seconds: float, cut: Callable[[], None]) -> _Watch:
        watch = _Watch(time.monotonic() + seconds, cut)
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: no thread yet
                self._pid = os.getpid()
                self._heap = []
                threading.Thread(
                    target=self._run, name="pyramid_jeff-sql-watchdog", daemon=True
                ).start()
            earliest = self._heap[0][0] if self._heap else math.inf
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if watch.deadline < earliest:
                self._wake.notify()
        return watch

    def disarm(self, watch: _Watch) -> bool:
        """End the watch; ``True`` if it had already cut the connection."""
        with self._lock:
            watch.done = True
            return watch.fired

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, watch = heapq.heappop(self._heap)
                    if not watch.done:
                        watch.done = watch.fired = True
                        try:
                            watch.cut()
                        except Exception:  # a connection already closed: nothing to cut
                            log.debug("cutting a timed-out connection failed", exc_info=True)
                self._wake.wait(self._heap[0][0] - now if self._heap else None)

    def _after_fork(self) -> None:
        # A lock held by another thread at fork time would stay held in the child.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap = []
        self._pid = None


WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=WATCHDOG._after_fork)


def _shutdown_fd(fd: int) -> None:
    # shutdown() acts on the socket, not the descriptor: the driver's blocked read or
    # write returns at once with an error, and the driver still owns (and closes) its fd.
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.shutdown(socket.SHUT_RDWR)
    finally:
        sock.close()


def cutter(dbapi_connection: Any) -> Callable[[], None] | None:
    """How to end a blocked call on this DBAPI connection, if the driver lets us."""
    interrupt = getattr(dbapi_connection, "interrupt", None)  # sqlite3
    if callable(interrupt):
        cut: Callable[[], None] = interrupt
        return cut
    sock = getattr(dbapi_connection, "_sock", None)  # pymysql
    if isinstance(sock, socket.socket):
        return lambda: sock.shutdown(socket.SHUT_RDWR)
    fileno = getattr(dbapi_connection, "fileno", None)  # psycopg, psycopg2
    if callable(fileno):
        fd: int = fileno()
        return lambda: _shutdown_fd(fd)
    return None

"""What-if variants: pyramid_jeff apps patched *in the benchmark only*, to price a change.

Measuring a patched app beside the unpatched one, in the same interleaved run, says what a
change would buy before anyone makes it (or what a cost is made of). Nothing here is a design:
the patches reach into internals. Changes that the package has since made (running commands
on a pooled connection instead of ``Redis.execute_command``, the one-pass ``_keep_private``)
are no longer what-ifs: the unpatched jeff rows measure them.

* ``request-class``: **a measurement, not a proposal.** pyramid_jeff registers
  ``request.jeff_session`` / ``request.jeff`` with ``config.add_request_method(reify=True)``,
  the idiomatic Pyramid way, and keeps it. For any reified request method Pyramid builds a new
  request class on every request (``InstancePropertyHelper.apply_properties``), a cost every
  app with one such property already pays (pyramid_tm's ``request.tm``, a ``request.user``).
  The patch moves the properties onto one request subclass made at start-up, which prices that
  class creation: compare ``bare + 2 reified request properties`` with its patched row too.
* ``thread-conn``: ``RedisStore._command`` on a connection each thread keeps (checked out of
  the store's pool once), without the pool's checkout and release on every command (queue,
  ``can_read()`` poll of the socket, observability counters).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pyramid.interfaces import IRequestExtensions, IRequestFactory, ISecurityPolicy
from pyramid.request import Request


def request_class(app: Any) -> Any:
    """Move the app's reified request properties onto one subclass built now."""
    registry = app.registry
    ext = registry.queryUtility(IRequestExtensions)
    if ext is None or not ext.descriptors:
        return app
    base = registry.queryUtility(IRequestFactory, default=Request)
    cls = type(base.__name__, (base,), dict(ext.descriptors))
    registry.registerUtility(cls, IRequestFactory)
    app.request_factory = cls  # the Router read both at start-up
    app.request_extensions = None if not ext.methods else ext
    ext.descriptors = {}
    return app


def thread_conn(app: Any) -> Any:
    """Every command of the app's RedisStore on a connection its thread keeps."""
    import redis

    from pyramid_jeff.errors import StoreUnavailable

    store = app.registry.queryUtility(ISecurityPolicy).manager.store
    pool = store._pool  # None for a cluster client: nothing to patch
    if pool is None:
        raise RuntimeError("thread-conn: the store has no connection pool")
    local = threading.local()

    def command(*args: Any) -> Any:
        connection = getattr(local, "connection", None)
        try:
            if connection is None:
                connection = local.connection = pool.get_connection()  # kept by this thread
            connection.send_command(*args)
            return connection.read_response()
        except redis.ResponseError as exc:  # a whole error reply: the connection is fine
            raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        except BaseException as exc:
            if connection is not None:
                connection.disconnect()  # reconnects on its next use
            if isinstance(exc, redis.RedisError):
                raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
            raise

    store._command = command
    return app


PATCHES: dict[str, Callable[[Any], Any]] = {
    "request-class": request_class,
    "thread-conn": thread_conn,
}


def patched(build: Callable[[str], Any], *names: str) -> Callable[[str], Any]:
    def make(url: str) -> Any:
        app = build(url)
        for name in names:
            app = PATCHES[name](app)
        return app

    return make


# name -> (label, variant in apps.VARIANTS, patches)
WHATIFS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "bare-props+rc": (
        "bare + 2 reified request properties + request class",
        "bare-props",
        ("request-class",),
    ),
    "jeff-memory+rc": ("pyramid_jeff (memory) + request class", "jeff-memory", ("request-class",)),
    "jeff-redis+rc": ("pyramid_jeff (Redis) + request class", "jeff-redis", ("request-class",)),
    "jeff-redis+thread": (
        "pyramid_jeff (Redis) + per-thread connection",
        "jeff-redis",
        ("thread-conn",),
    ),
    "jeff-redis+rc+thread": (
        "pyramid_jeff (Redis) + request class + per-thread connection",
        "jeff-redis",
        ("request-class", "thread-conn"),
    ),
}


def variant_of(name: str) -> str:
    """The apps.VARIANTS name a variant or what-if is built from."""
    return WHATIFS[name][1] if name in WHATIFS else name


def build(name: str, url: str) -> Any:
    """The WSGI app of a variant of apps.VARIANTS or of a what-if above."""
    from apps import VARIANTS

    if name in VARIANTS:
        return VARIANTS[name].build(url)
    _, variant, patches = WHATIFS[name]
    return patched(VARIANTS[variant].build, *patches)(url)


def label(name: str) -> str:
    from apps import VARIANTS

    return VARIANTS[name].label if name in VARIANTS else WHATIFS[name][0]

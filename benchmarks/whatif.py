"""What-if variants: pyramid_jeff apps patched *in the benchmark only* to price a suggestion.

Each patch stands for one change the profile points at; measuring it beside the unpatched app,
in the same interleaved run, says what the change would buy before anyone makes it. Nothing
here is a design: they reach into internals and skip error handling a real change would keep.

* ``request-class``: ``request.jeff_session`` / ``request.jeff`` as reified properties of a
  request subclass made once at startup, instead of ``config.add_request_method(reify=True)``,
  for which Pyramid builds a new class on every request.
* ``lean-get``: ``RedisStore.get`` sends ``HGET`` on a pooled connection itself
  (``send_command`` + ``read_response``) instead of going through ``Redis.execute_command``.
* ``thread-conn``: the same on a connection each thread keeps, without the pool's checkout
  (lock, health ``poll``, observability counters) on every request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyramid.interfaces import IRequestExtensions, IRequestFactory, ISecurityPolicy
from pyramid.request import Request


def request_class(app: Any) -> Any:
    """Move the app's request properties onto one subclass built now."""
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


def lean_get(app: Any) -> Any:
    """HGET without ``Redis.execute_command`` (retry wrapper, observability, command parsing)."""
    from pyramid_jeff.errors import StoreUnavailable
    from pyramid_jeff.session import unpack_record

    store = app.registry.queryUtility(ISecurityPolicy).manager.store
    pool = store.client.connection_pool

    def get(key_digest: str, session_id: str) -> Any:
        try:
            conn = pool.get_connection()
        except Exception as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        try:
            conn.send_command("HGET", store.hash_key(key_digest), session_id)
            value = conn.read_response()
        except BaseException as exc:
            conn.disconnect()
            raise StoreUnavailable(f"redis: {exc}") from exc
        finally:
            pool.release(conn)
        return None if value is None else unpack_record(session_id, value)

    store.get = get
    return app


def thread_conn_get(app: Any) -> Any:
    """HGET on a connection each thread keeps (no pool checkout, no health poll per call)."""
    import threading

    from pyramid_jeff.errors import StoreUnavailable
    from pyramid_jeff.session import unpack_record

    store = app.registry.queryUtility(ISecurityPolicy).manager.store
    pool = store.client.connection_pool
    local = threading.local()

    def get(key_digest: str, session_id: str) -> Any:
        conn = getattr(local, "conn", None)
        try:
            if conn is None:
                conn = local.conn = pool.get_connection()  # kept by this thread
            conn.send_command("HGET", store.hash_key(key_digest), session_id)
            value = conn.read_response()
        except BaseException as exc:
            if conn is not None:
                conn.disconnect()  # reconnects on next use
            raise StoreUnavailable(f"redis: {exc}") from exc
        return None if value is None else unpack_record(session_id, value)

    store.get = get
    return app


PATCHES: dict[str, Callable[[Any], Any]] = {
    "request-class": request_class,
    "lean-get": lean_get,
    "thread-conn": thread_conn_get,
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
    "jeff-memory+rc": ("pyramid_jeff (memory) + request class", "jeff-memory", ("request-class",)),
    "jeff-redis+rc": ("pyramid_jeff (Redis) + request class", "jeff-redis", ("request-class",)),
    "jeff-redis+rc+lean": (
        "pyramid_jeff (Redis) + request class + lean HGET",
        "jeff-redis",
        ("request-class", "lean-get"),
    ),
    "jeff-redis+rc+thread": (
        "pyramid_jeff (Redis) + request class + per-thread connection HGET",
        "jeff-redis",
        ("request-class", "thread-conn"),
    ),
}


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

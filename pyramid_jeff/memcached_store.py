"""A store on memcached (>= 1.4.x text protocol) through pymemcache: every change by CAS.

Layout, per session key (``<p>`` is the key prefix, ``<kd>`` the key digest)::

    <p>s:<kd>:<session id>  the session: generation (8 bytes) + pack_record(session);
                            b"" is a tombstone (an ended session)
    <p>k:<kd>               the index: msgpack [generation, [[id, created_ms, expires_ms], ...]]
    <p>g:<kd>               the marker: generation (8 bytes) + max expires_ms (ASCII)

All items of one key live on one server: servers are chosen by rendezvous hashing of
the key digest (pymemcache's ``RendezvousHash``), and a server that is down is never
replaced by another one (that would be a logout): its keys raise
:class:`~pyramid_jeff.StoreUnavailable` until it is back.

Verifying a request is ONE ``get`` command (one round trip) of the session item and the
marker; the index is never read on the request path. A session counts only while its
generation equals the marker's, and the marker follows the index's generation: an index
that is missing or unreadable is replaced by one of a new generation, which ends every
session the lost one listed. The index and the marker change only by ``cas`` (or
``add`` when missing), with at most :data:`CAS_ATTEMPTS` tries; past them a call raises
``StoreUnavailable``, never loses a login silently.

Operations (round trips in the common case):

- login (``create``): ``gets`` index + marker (+ the replaced session), ``add`` the session
  item, ``cas`` the index to list it: 3 (the first login of a key also ``add``s the
  marker; about once a month a login extends the marker's life with a ``cas``). A
  session item exists before the index lists it, but its token is handed out only once
  it is listed, so no usable session is ever unlisted; the marker then follows the
  index's generation (a write only when it differs). Replacing a session adds a ``cas``
  that tombstones it. At ``max_sessions``: one ``gets`` of the key's items, a ``delete``
  of the dead ones, a ``cas`` tombstone per evicted one, all *before* the index forgets
  them (so a failure between the two leaves a listed dead entry, never an unlisted live
  session; the price: a login that then fails may already have evicted the oldest
  session it was making room for).
- ``touch``: ``gets`` session + marker, ``cas``: 2. Update-only (``cas`` never creates),
  so a revoked session stays dead; of concurrent refreshes only one writes.
- logout/``revoke``: ``gets`` session + marker + index, ``cas`` tombstone, ``cas`` index: 3.
- ``revoke_all``: ``gets`` index + marker, ``gets`` the items, one ``cas`` tombstone per
  live session, ``cas`` index: 3 + sessions. The count is exact: a session ended by two
  concurrent calls is counted by the one whose ``cas`` won.
- ``list``: ``gets`` index + marker, ``get`` the items: 2.

Lifetimes: a session item lives until its session's ``expires_ms`` (plus a second), the
marker and the index at least until the latest of them (the marker 30 days more, so it
is rewritten about once a month per key). Lifetimes are computed from the caller's
clock, like the Redis store's TTL; above 30 days memcached takes an absolute Unix time,
computed from this machine's clock (a memcached host whose clock runs ahead shortens
them by the difference). Tombstones live :data:`TOMBSTONE_TTL` seconds.

Memcached evicts items under memory pressure (unless started with ``-M``):

- an evicted session item: that browser is logged out;
- an evicted marker: every session of that key fails verification until the next login,
  ``list`` or ``revoke_all`` of the key rewrites the marker from the index (which
  brings back the sessions the index lists; never a revoked one, each of which is
  tombstoned or gone);
- an evicted index: its sessions cannot be listed, so the next operation that reads it
  (a login, ``list``, ``revoke_all`` of that key) starts a new generation, which ends
  every session of the key at once (``revoke_all`` then keeps ``keep`` but cannot count
  the others and returns 0). Until then those sessions keep working, but no session is
  ever beyond the reach of ``revoke_all``.

Eviction never lets a session live longer than the store promised; it only logs users
out. Run memcached with ``-M`` (errors instead of evictions) and enough ``-m`` memory to
keep every login.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import random
import secrets
import socket
import threading
import time
import types
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import msgpack
from pymemcache.client.base import Client
from pymemcache.client.rendezvous import RendezvousHash
from pymemcache.exceptions import MemcacheError

from . import deadline
from .errors import StoreUnavailable
from .session import Session, pack_record, unpack_record

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PORT = 11211
# Tries of one compare-and-swap step before the call gives up with StoreUnavailable.
CAS_ATTEMPTS = 16
GEN_BYTES = 8
TOMBSTONE = b""
# Long enough for a concurrent touch to find it (its cas fails either way), short
# enough not to fill memory with ended sessions.
TOMBSTONE_TTL = 10
# The marker outlives the latest session by this much, so it is rewritten rarely.
MARKER_SLACK_MS = 30 * 24 * 3600 * 1000
# memcached reads an exptime above this as an absolute Unix time.
MAX_RELATIVE_EXPTIME = 30 * 24 * 3600


def _exptime(ttl_ms: int) -> int:
    """A memcached exptime at least ``ttl_ms`` away (never 0, which means "forever")."""
    seconds = max(-(-ttl_ms // 1000), 1) + 1  # rounded up, plus memcached's 1 s granularity
    if seconds > MAX_RELATIVE_EXPTIME:
        return int(time.time()) + seconds
    return seconds


def _unavailable(what: str, exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"memcached: {what}: {type(exc).__name__}: {exc}")


def _contention(what: str) -> StoreUnavailable:
    return StoreUnavailable(f"memcached: {what}: {CAS_ATTEMPTS} compare-and-swap conflicts")


def _backoff(attempt: int) -> None:
    # A cas lost to a concurrent writer: a short random pause spreads the contenders
    # (bounded: at most about 0.1 s over all attempts, and only under contention).
    time.sleep(random.uniform(0, 0.0005 * (attempt + 1)))


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


class _Node:
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


class _Index(NamedTuple):
    present: bool  # an item is stored (maybe unreadable): write it back with cas
    cas: Any
    gen: bytes | None  # None: unreadable
    entries: list[list[Any]]  # [session id, created_ms, expires_ms]


class _Marker(NamedTuple):
    present: bool
    cas: Any
    gen: bytes | None  # None: missing or unreadable
    max_expires_ms: int


def _parse_index(got: dict[str, tuple[Any, Any]], name: str) -> _Index:
    value, cas = got.get(name, (None, None))
    if value is None:
        return _Index(False, None, None, [])
    try:
        gen, entries = msgpack.unpackb(value, raw=False)
        if not isinstance(gen, bytes) or len(gen) != GEN_BYTES:
            raise ValueError("bad generation")
        checked = []
        for entry in entries:
            session_id, created_ms, expires_ms = entry
            if not isinstance(session_id, str):
                raise ValueError("bad session id")
            checked.append([session_id, int(created_ms), int(expires_ms)])
        return _Index(True, cas, gen, checked)
    except Exception as exc:  # foreign or corrupt data: overwritten by the next writer
        log.warning("unreadable memcached session index %s: %s", name, exc)
        return _Index(True, cas, None, [])


def _parse_marker(got: dict[str, tuple[Any, Any]], name: str) -> _Marker:
    value, cas = got.get(name, (None, None))
    if value is None:
        return _Marker(False, None, None, 0)
    try:
        return _Marker(True, cas, bytes(value[:GEN_BYTES]), int(value[GEN_BYTES:]))
    except ValueError:
        return _Marker(True, cas, None, 0)


def _marker_value(gen: bytes, max_expires_ms: int) -> bytes:
    return gen + str(max_expires_ms).encode("ascii")


def _index_value(gen: bytes, entries: list[list[Any]]) -> bytes:
    packed: bytes = msgpack.packb([gen, entries], use_bin_type=True)
    return packed


def _decode(session_id: str, value: bytes) -> Session | None:
    """The session in an item value, or ``None`` for a tombstone or unreadable data."""
    if len(value) <= GEN_BYTES:
        return None
    try:
        return unpack_record(session_id, value[GEN_BYTES:])
    except ValueError:
        return None


class MemcachedStore:
    """Sessions in memcached: one or several servers, every change by CAS.

    Inside a request (see :mod:`pyramid_jeff.deadline`) every store call counts against
    the request's budget: it is checked before each call, and each wait (a free pooled
    connection, connecting, each send and receive) gets at most what is left.
    """

    def __init__(
        self,
        servers: Iterable[tuple[str, int]],
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 50,
        key_prefix: str = "jeff:",
    ) -> None:
        if not (key_prefix.isascii() and key_prefix.isprintable()) or " " in key_prefix:
            raise ValueError("key_prefix must be printable ASCII without spaces")
        if len(key_prefix) > 100:
            raise ValueError("key_prefix must be at most 100 characters (memcached keys: 250)")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.key_prefix = key_prefix
        # What one request may wait on this store in total (the tween opens it).
        self.request_budget: float | None = socket_timeout
        self.nodes: dict[str, _Node] = {}
        for host, port in servers:
            node = _Node(
                host,
                port,
                timeout=socket_timeout,
                connect_timeout=socket_connect_timeout,
                max_connections=max_connections,
            )
            if node.name in self.nodes:
                raise ValueError(f"server {node.name} is listed twice")
            self.nodes[node.name] = node
        if not self.nodes:
            raise ValueError("at least one memcached server is needed")
        self._single = next(iter(self.nodes.values())) if len(self.nodes) == 1 else None
        hasher = RendezvousHash()
        for name in self.nodes:
            hasher.add_node(name)
        # The hash is pure Python (some microseconds per server): remembered per key.
        self._route: Callable[[str], str] = lru_cache(maxsize=16384)(hasher.get_node)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 50,
        key_prefix: str = "jeff:",
    ) -> MemcachedStore:
        """A store for ``memcached://host[:port][,host[:port]...]`` (port 11211 by default).

        Connects lazily. Every command fails within ``socket_timeout`` (connecting:
        ``socket_connect_timeout``); a call waits at most ``socket_timeout`` for one of
        the ``max_connections`` connections per server. ``ValueError`` names what is
        wrong with a malformed URL.
        """
        return cls(
            parse_url(url),
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            key_prefix=key_prefix,
        )

    # -- names and plumbing --------------------------------------------------------

    def item_key(self, key_digest: str, session_id: str) -> str:
        return f"{self.key_prefix}s:{key_digest}:{session_id}"

    def index_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}k:{key_digest}"

    def marker_key(self, key_digest: str) -> str:
        return f"{self.key_prefix}g:{key_digest}"

    def node_for(self, key_digest: str) -> _Node:
        """The server holding every item of this key."""
        if self._single is not None:
            return self._single
        return self.nodes[self._route(key_digest)]

    def _gets(self, node: _Node, names: list[str]) -> dict[str, tuple[Any, Any]]:
        got: dict[str, tuple[Any, Any]] = node.run("gets", lambda c: c.gets_many(names))
        return got

    def _cas(self, node: _Node, name: str, value: bytes, cas: Any, exptime: int) -> bool | None:
        """True: stored; False: someone else wrote it since; None: it is gone."""
        result: bool | None = node.run("cas", lambda c: c.cas(name, value, cas, exptime))
        return result

    def _add(self, node: _Node, name: str, value: bytes, exptime: int) -> bool:
        return bool(node.run("add", lambda c: c.add(name, value, exptime, noreply=False)))

    def _set(self, node: _Node, name: str, value: bytes, exptime: int) -> None:
        node.run("set", lambda c: c.set(name, value, exptime, noreply=False))

    def _delete_many(self, node: _Node, names: list[str]) -> None:
        if names:
            node.run("delete", lambda c: c.delete_many(names, noreply=False))

    # -- the protocol ----------------------------------------------------------------

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
    ) -> int:
        node = self.node_for(key_digest)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        item_name = self.item_key(key_digest, session.id)
        replace_name = None if replace_id is None else self.item_key(key_digest, replace_id)
        record = pack_record(session)
        item_exptime = _exptime(session.expires_ms - now_ms)
        added_gen: bytes | None = None  # the generation our item carries, once stored
        ended: set[str] = set()  # ids this call ended (tombstoned or deleted)
        evicted = 0
        replace_checked = replace_name is None
        try:
            for attempt in range(CAS_ATTEMPTS):
                if attempt:
                    _backoff(attempt)
                names = [index_name, marker_name]
                if not replace_checked:
                    names.append(str(replace_name))
                got = self._gets(node, names)
                index, marker = _parse_index(got, index_name), _parse_marker(got, marker_name)

                # 1. The generation is the index's; an index that is missing or
                # unreadable starts a new one (see the module docstring).
                if index.gen is not None:
                    gen, entries = index.gen, index.entries
                else:
                    gen, entries = secrets.token_bytes(GEN_BYTES), []

                # 2. The session the browser carried, if its token is the one given.
                if not replace_checked:
                    assert replace_name is not None and replace_id is not None
                    value, cas = got.get(replace_name, (None, None))
                    old = None if value is None else _decode(replace_id, value)
                    if old is not None and hmac.compare_digest(
                        old.token_digest, replace_token_digest or b""
                    ):
                        result = self._cas(node, replace_name, TOMBSTONE, cas, TOMBSTONE_TTL)
                        if result is False:
                            continue  # touched meanwhile: read it again
                        ended.add(replace_id)
                    replace_checked = True
                entries = [e for e in entries if e[0] not in ended]

                # 3. The cap: drop the dead, then the oldest live, until the new one fits.
                if len(entries) >= max_sessions:
                    outcome = self._make_room(
                        node, key_digest, session.key, entries, gen, ended,
                        max_sessions=max_sessions, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
                    )  # fmt: skip
                    if outcome is None:
                        continue  # a victim was touched meanwhile: read everything again
                    entries, newly_evicted = outcome
                    evicted += newly_evicted

                # 4. Our session, stored before it is listed: its token is handed out
                # only once it is listed, so an unlisted session is never usable.
                if added_gen != gen:
                    value = gen + record
                    if added_gen is None:
                        if not self._add(node, item_name, value, item_exptime):
                            raise StoreUnavailable("memcached: a session id is already taken")
                    else:  # a new generation began meanwhile: our item follows it
                        self._set(node, item_name, value, item_exptime)
                    added_gen = gen

                # 5. List it.
                entries.append([session.id, session.created_ms, session.expires_ms])
                if not self._write_index(node, key_digest, index, gen, entries, now_ms):
                    continue
                # 6. The marker follows the index (and outlives its sessions).
                needed = max(e[2] for e in entries)
                if self._follow(node, key_digest, marker, gen, needed, now_ms):
                    return evicted
                # The index was lost and rebuilt meanwhile: list our session again.
            raise _contention("login")
        except BaseException:
            if added_gen is not None:
                self._discard(node, item_name)
            raise

    def _write_index(
        self,
        node: _Node,
        key_digest: str,
        index: _Index,
        gen: bytes,
        entries: list[list[Any]],
        now_ms: int,
    ) -> bool:
        """``cas`` (or ``add``) the index; ``False`` if another writer got there first.
        It lives as long as the longest of its sessions."""
        value = _index_value(gen, entries)
        exptime = _exptime(max((e[2] for e in entries), default=now_ms) - now_ms)
        name = self.index_key(key_digest)
        if index.present:
            return bool(self._cas(node, name, value, index.cas, exptime))
        return self._add(node, name, value, exptime)

    def _follow(
        self, node: _Node, key_digest: str, marker: _Marker, gen: bytes, needed_ms: int,
        now_ms: int,
    ) -> bool:  # fmt: skip
        """Make the marker carry ``gen``, the index's generation, and live past
        ``needed_ms``. ``False`` if the index no longer has that generation.

        Moving it to the index's generation ends the sessions of the one it held (they
        were listed nowhere: a lost index); a session is valid only once this is done.
        """
        index_name, name = self.index_key(key_digest), self.marker_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
                got = self._gets(node, [index_name, name])
                if _parse_index(got, index_name).gen != gen:
                    return False
                marker = _parse_marker(got, name)
            if marker.gen == gen and marker.max_expires_ms >= needed_ms:
                return True
            max_expires = needed_ms + MARKER_SLACK_MS
            if marker.gen == gen:
                max_expires = max(max_expires, marker.max_expires_ms)
            value = _marker_value(gen, max_expires)
            exptime = _exptime(max_expires - now_ms)
            if marker.present:
                if self._cas(node, name, value, marker.cas, exptime):
                    return True
            elif self._add(node, name, value, exptime):
                return True
        raise _contention("marker")

    def _make_room(
        self,
        node: _Node,
        key_digest: str,
        key: str,
        entries: list[list[Any]],
        gen: bytes,
        ended: set[str],
        *,
        max_sessions: int,
        now_ms: int,
        idle_timeout_ms: int,
    ) -> tuple[list[list[Any]], int] | None:
        """Prune and evict at the cap, as the Redis script does: entries whose item is
        gone, unreadable, of another generation or a dead session of ``key`` are
        dropped (their items deleted); then, while ``key`` holds ``max_sessions`` live
        sessions, the oldest (by creation time, then id) is tombstoned. Other keys'
        sessions (a digest collision) are neither counted nor dropped. Every item is
        ended before the index forgets it. Returns the entries left and how many live
        sessions were evicted, or ``None`` if a victim changed meanwhile."""
        names = {e[0]: self.item_key(key_digest, e[0]) for e in entries}
        got = self._gets(node, list(names.values()))
        keep: list[list[Any]] = []
        live: list[tuple[int, str, Any]] = []
        doomed: list[str] = []
        for entry in entries:
            session_id = entry[0]
            value, cas = got.get(names[session_id], (None, None))
            stored = None if value is None else _decode(session_id, value)
            if stored is None or value[:GEN_BYTES] != gen:
                if value is not None and value != TOMBSTONE:
                    doomed.append(names[session_id])  # unreadable or of an ended generation
                ended.add(session_id)
            elif stored.key != key:
                keep.append(entry)
            elif stored.is_live(now_ms, idle_timeout_ms):
                keep.append(entry)
                live.append((stored.created_ms, session_id, cas))
            else:
                doomed.append(names[session_id])
                ended.add(session_id)
        self._delete_many(node, doomed)
        evicted = 0
        if len(live) >= max_sessions:
            live.sort(key=lambda item: (item[0], item[1]))
            for _, session_id, cas in live[: len(live) - max_sessions + 1]:
                result = self._cas(node, names[session_id], TOMBSTONE, cas, TOMBSTONE_TTL)
                if result is False:
                    return None
                if result:
                    evicted += 1  # None: ended by someone else meanwhile, not by us
                ended.add(session_id)
        return [e for e in keep if e[0] not in ended], evicted

    def _discard(self, node: _Node, name: str) -> None:
        """Best effort: remove our own unlisted item after a failed login."""
        # Unlisted, its token never handed out: if this fails too, it expires unused.
        with contextlib.suppress(StoreUnavailable):
            node.run("delete", lambda c: c.delete(name, noreply=False))

    def get(self, key_digest: str, session_id: str) -> Session | None:
        item_name, marker_name = self.item_key(key_digest, session_id), self.marker_key(key_digest)
        node = self.node_for(key_digest)
        got: dict[str, bytes] = node.run("get", lambda c: c.get_many([item_name, marker_name]))
        value, marker = got.get(item_name), got.get(marker_name)
        if not value or marker is None or marker[:GEN_BYTES] != value[:GEN_BYTES]:
            return None  # gone, a tombstone, or of an ended generation
        if len(value) <= GEN_BYTES:
            raise ValueError("corrupt session item")
        return unpack_record(session_id, value[GEN_BYTES:])

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        item_name, marker_name = self.item_key(key_digest, session_id), self.marker_key(key_digest)
        node = self.node_for(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            got = self._gets(node, [item_name, marker_name])
            value, cas = got.get(item_name, (None, None))
            marker = got.get(marker_name, (None, None))[0]
            stored = None if value is None else _decode(session_id, value)
            if stored is None or marker is None or marker[:GEN_BYTES] != value[:GEN_BYTES]:
                return False
            if last_seen_ms < stored.last_seen_ms + max(min_interval_ms, 1):
                return True
            new = value[:GEN_BYTES] + pack_record(stored.seen_at(last_seen_ms))
            result = self._cas(
                node, item_name, new, cas, _exptime(stored.expires_ms - last_seen_ms)
            )
            if result is not False:
                return bool(result)  # None: ended meanwhile, and cas never re-creates it
            # Someone else wrote it (another refresh, a revocation): read it again.
        raise _contention("touch")

    def list(self, key_digest: str) -> list[Session]:
        node = self.node_for(key_digest)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        got = self._gets(node, [index_name, marker_name])
        index, marker = _parse_index(got, index_name), _parse_marker(got, marker_name)
        now_ms = time.time_ns() // 1_000_000
        if index.gen is None:
            if marker.gen is not None:
                # A lost index: its sessions cannot be listed, so end them all now
                # (a new generation) rather than answer "none" while they still work.
                gen = secrets.token_bytes(GEN_BYTES)
                if self._write_index(node, key_digest, index, gen, [], now_ms):
                    self._follow(node, key_digest, marker, gen, now_ms, now_ms)
            return []
        gen = index.gen
        if marker.gen != gen:
            needed = max((e[2] for e in index.entries), default=now_ms)
            if not self._follow(node, key_digest, marker, gen, needed, now_ms):
                return []  # rebuilt meanwhile: nothing of this generation is listed
        names = {self.item_key(key_digest, e[0]): e[0] for e in index.entries}
        items: dict[str, bytes] = node.run("get", lambda c: c.get_many(list(names)))
        sessions: list[Session] = []
        for name, value in items.items():
            if value == TOMBSTONE or value[:GEN_BYTES] != gen:
                continue
            stored = _decode(names[name], value)
            if stored is None:
                log.warning("skipping an unreadable session item %s", name)
            else:
                sessions.append(stored)
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
    ) -> bool:
        """End one session; with ``token_digest``, only if it is that session's; with
        ``key``, only if it is a session of that key (two keys' digests may collide)."""
        node = self.node_for(key_digest)
        item_name = self.item_key(key_digest, session_id)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            got = self._gets(node, [item_name, marker_name, index_name])
            value, cas = got.get(item_name, (None, None))
            if value is None or value == TOMBSTONE:
                return False
            stored = _decode(session_id, value)
            if token_digest is not None and (
                stored is None or not hmac.compare_digest(stored.token_digest, token_digest)
            ):
                return False
            if key is not None and stored is not None and stored.key != key:
                return False
            marker = _parse_marker(got, marker_name)
            was_live = (
                stored is not None
                and marker.gen == value[:GEN_BYTES]
                and stored.is_live(now_ms, idle_timeout_ms)
            )
            result = self._cas(node, item_name, TOMBSTONE, cas, TOMBSTONE_TTL)
            if result is None:
                return False  # ended meanwhile by someone else
            if result:
                break
            # Touched meanwhile: read it again (the token and the key do not change).
        else:
            raise _contention("revoke")
        self._unlist(node, key_digest, got, {session_id}, now_ms=now_ms)
        return was_live

    def _unlist(
        self,
        node: _Node,
        key_digest: str,
        got: dict[str, tuple[Any, Any]],
        ids: set[str],
        *,
        now_ms: int,
    ) -> None:
        """Remove ``ids`` (sessions already ended) from the index. Best effort past the
        attempts: a listed ended session is only a dead entry, pruned later."""
        index_name = self.index_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
                got = self._gets(node, [index_name])
            index = _parse_index(got, index_name)
            if index.gen is None:
                return  # no index: the next login or list starts a new generation
            entries = [e for e in index.entries if e[0] not in ids]
            if len(entries) == len(index.entries):
                return
            if self._write_index(node, key_digest, index, index.gen, entries, now_ms):
                return
        log.warning("memcached: left %d ended sessions listed after conflicts", len(ids))

    def revoke_all(
        self,
        key_digest: str,
        *,
        keep: str | None,
        now_ms: int,
        idle_timeout_ms: int,
        key: str | None = None,
    ) -> int:
        """End every session but ``keep``; with ``key``, only sessions of that key.
        Returns how many were live (0 after a lost index: see the module docstring)."""
        node = self.node_for(key_digest)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            got = self._gets(node, [index_name, marker_name])
            index, marker = _parse_index(got, index_name), _parse_marker(got, marker_name)
            if index.gen is None:
                if marker.gen is None:
                    return 0  # no generation: no session of this key is valid
                if self._repair_keeping(node, key_digest, index, marker, keep, key, now_ms):
                    return 0
                continue
            if marker.gen == index.gen:
                break
            needed = max((e[2] for e in index.entries), default=now_ms)
            if self._follow(node, key_digest, marker, index.gen, needed, now_ms):
                break
        else:
            raise _contention("revoke_all")
        gen = index.gen
        targets = [e[0] for e in index.entries if e[0] != keep]
        names = {session_id: self.item_key(key_digest, session_id) for session_id in targets}
        items = self._gets(node, list(names.values()))
        ended: set[str] = set()
        doomed: list[str] = []
        live = 0
        for session_id in targets:
            name = names[session_id]
            value, cas = items.get(name, (None, None))
            for attempt in range(CAS_ATTEMPTS):
                if attempt:
                    _backoff(attempt)
                    value, cas = self._gets(node, [name]).get(name, (None, None))
                if value is None or value == TOMBSTONE:
                    ended.add(session_id)  # gone already
                    break
                stored = _decode(session_id, value)
                if stored is not None and key is not None and stored.key != key:
                    break  # another key's session: it stays listed
                if stored is None or value[:GEN_BYTES] != gen:
                    doomed.append(name)  # nobody's (unreadable) or of an ended generation
                    ended.add(session_id)
                    break
                result = self._cas(node, name, TOMBSTONE, cas, TOMBSTONE_TTL)
                if result is not False:
                    if result and stored.is_live(now_ms, idle_timeout_ms):
                        live += 1  # ended by us (None: by someone else meanwhile)
                    ended.add(session_id)
                    break
                # Touched meanwhile: read it again.
            else:
                raise _contention("revoke_all")
        self._delete_many(node, doomed)
        self._unlist(node, key_digest, got, ended, now_ms=now_ms)
        return live

    def _repair_keeping(
        self,
        node: _Node,
        key_digest: str,
        index: _Index,
        marker: _Marker,
        keep: str | None,
        key: str | None,
        now_ms: int,
    ) -> bool:
        """``revoke_all`` over a lost index: a new generation ends every session; a live
        ``keep`` moves to it. ``False`` if a concurrent writer got there first."""
        gen = secrets.token_bytes(GEN_BYTES)
        kept: list[list[Any]] = []
        keep_name = None if keep is None else self.item_key(key_digest, keep)
        keep_value: Any = None
        keep_cas: Any = None
        if keep is not None and keep_name is not None:
            keep_value, keep_cas = self._gets(node, [keep_name]).get(keep_name, (None, None))
            stored = None if keep_value is None else _decode(keep, keep_value)
            if (
                stored is not None
                and keep_value[:GEN_BYTES] == marker.gen
                and (key is None or stored.key == key)
            ):
                kept = [[keep, stored.created_ms, stored.expires_ms]]
        if not self._write_index(node, key_digest, index, gen, kept, now_ms):
            return False
        if kept and keep_name is not None:
            # From here until the marker follows, ``keep`` fails verification: a window
            # of one round trip, only after memcached evicted the index.
            moved = gen + keep_value[GEN_BYTES:]
            if not self._cas(node, keep_name, moved, keep_cas, _exptime(kept[0][2] - now_ms)):
                log.warning("memcached: the session to keep changed while its index was rebuilt")
        needed = max([now_ms, *(e[2] for e in kept)])
        self._follow(node, key_digest, marker, gen, needed, now_ms)
        return True

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()


def parse_url(url: str) -> list[tuple[str, int]]:
    """The servers of ``memcached://host[:port][,host[:port]...]``; ``ValueError`` says
    what is wrong."""
    if not isinstance(url, str):
        raise ValueError(f"a memcached URL is a str, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "memcached":
        raise ValueError(f"not a memcached:// URL: {url!r}")
    parts = urlsplit("//" + rest)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in rest:
        raise ValueError(f"a memcached URL has no path, query or fragment: {url!r}")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(f"a memcached URL has no user or password: {url!r}")
    servers: list[tuple[str, int]] = []
    for spec in netloc.split(","):
        host, port = _host_port(spec.strip(), url)
        servers.append((host, port))
    return servers


def _host_port(spec: str, url: str) -> tuple[str, int]:
    if spec.startswith("["):  # [IPv6]:port
        host, bracket, tail = spec[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"malformed IPv6 address {spec!r} in {url!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = spec.partition(":")
        port_text = port_text_raw if colon else None
    if not host:
        raise ValueError(f"a server without a host in {url!r}")
    if port_text is None:
        return host, DEFAULT_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} for {host} in {url!r}")
    return host, int(port_text)

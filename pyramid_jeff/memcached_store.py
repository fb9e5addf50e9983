"""A store on memcached (>= 1.4.x text protocol) through pymemcache: every change by CAS.

Layout, per session key (``<p>`` is the key prefix, ``<kd>`` the key digest)::

    <p>s:<kd>:<session id>  the session: generation (8 bytes) + epoch (8 bytes) +
                            pack_record(session); a tombstone's record has its reason
                            ("revoked", "evicted"); b"" is a logout's empty item
    <p>k:<kd>               the index: msgpack [generation, [[id, created_ms, expires_ms], ...]]
    <p>g:<kd>               the marker: generation (8 bytes) + max expires_ms (ASCII)

and on every server::

    <p>everyone             the cutoff: epoch (8 bytes) + ms (ASCII); sessions of that
                            epoch created at or before it are dead

All items of one key live on one server: servers are chosen by rendezvous hashing of
the key digest (pymemcache's ``RendezvousHash``), and a server that is down is never
replaced by another one (that would be a logout): its keys raise
:class:`~pyramid_jeff.StoreUnavailable` until it is back.

Verifying a request is ONE ``get`` command (one round trip) of the session item, the
marker and the cutoff; the index is never read on the request path. A session counts
only while its generation equals the marker's and its epoch the cutoff's (below), and
the marker follows the index's generation: an index that is missing or unreadable is
replaced by one of a new generation, which ends every session the lost one listed.
The index and the marker change only by ``cas`` (or ``add`` when missing), with at most
:data:`CAS_ATTEMPTS` tries; past them a call raises ``StoreUnavailable``, never loses a
login silently.

Tombstones: an evicted session, and one an operator revoked (``revoke(tombstone=True)``,
``revoke_all``), is rewritten in place as ``session.tombstone(reason, now_ms)`` and stays
listed, so that ``get`` and ``list`` give it (whatever the generation and the cutoff:
it is dead either way); ``touch`` never changes it; a login at the cap deletes it. A
logout, a rotation and a revocation without ``tombstone`` empty the item (b"", kept
:data:`TOMBSTONE_TTL` seconds so that a racing ``touch`` finds it changed; ``get``
reads it as ``None``) and unlist it. Every such end is a ``cas`` on the item, so a
session ended by two concurrent calls is counted by the one whose ``cas`` won.

Revoking everyone: ``revoke_everyone`` raises the cutoff item of every server (``add``
or ``cas``, never lowered); each operation reads the cutoff of its key's server in the
command it already sends, so ``get`` stays one round trip. Creation times come from
the application's clocks, so clocks that differ blur the cutoff by the difference. It
tries every server, then raises ``StoreUnavailable`` if any failed: that server's
sessions still work (once it answers again, if it kept its data) until a call
succeeds, so call it again.

The cutoff item has no expiry, but memcached may still evict it (without ``-M``), and a
server may be new, restarted or flushed. A missing cutoff must never bring back the
sessions it ended, so it fails closed: each server's cutoff item carries a random
*epoch*, copied into every session item stored there, and a session counts only while
its epoch is the cutoff's. A missing (or unreadable) cutoff matches no session
(``get`` gives ``None``, ``touch`` ``False``, the others count them dead), and the next
login on that server (or ``revoke_everyone``) writes one of a new epoch, which every
session stored before then lacks. So a lost cutoff logs out the users of that server,
as a restart would; logins in flight meanwhile either join the new epoch or are lost
too (a pool moving from a version without epochs logs out once). No clock is involved
in this: concurrent logins of a new server all count.

Operations (round trips in the common case):

- login (``create``): ``gets`` index + marker + cutoff (+ the replaced session), ``add``
  the session item, ``cas`` the index to list it: 3 (the first login of a key also
  ``add``s the marker, the first on a server the cutoff; about once a month a login
  extends the marker's life with a ``cas``). A session item exists before the index
  lists it, but its token is handed out only once it is listed, so no usable session
  is ever unlisted; the marker then follows the index's generation (a write only when
  it differs). Replacing a session adds a ``cas`` that empties it. When the index lists
  ``max_sessions``: one ``gets`` of the key's items, a ``delete`` of the dead ones
  (tombstones included), a ``cas`` tombstone per evicted one, all *before* the index
  forgets them (so a failure between the two leaves a listed dead entry, never an
  unlisted live session; the price: a login that then fails may already have evicted
  the oldest session it was making room for). With ``evict=False``, a key still full of
  live sessions raises :class:`~pyramid_jeff.TooManySessions` after that read, having
  written nothing (unless a concurrent login made it full after this one had ended the
  replaced session).
- ``get``: ``get`` item + marker + cutoff: 1.
- ``touch``: ``gets`` session + marker + cutoff, ``cas``: 2. Update-only (``cas`` never
  creates), so a revoked session stays dead; of concurrent refreshes only one writes.
- logout/``revoke``: ``gets`` session + marker + index + cutoff, ``cas`` the item, ``cas``
  the index to unlist it: 3; with ``tombstone``, a live session becomes a tombstone and
  stays listed: 2.
- ``revoke_all``: ``gets`` index + marker + cutoff, ``gets`` the items, one ``cas``
  tombstone per live session: 2 + live sessions (+ a ``delete`` of the dead and a
  ``cas`` of the index to unlist them, when there are any).
- ``revoke_everyone``: per server, ``gets`` the cutoff and ``add`` or ``cas`` it: 2 per
  server (1 where it is already later).
- ``list``: ``gets`` index + marker + cutoff, ``get`` the items: 2.
- ``stats``: per server, ``stats`` and ``get`` the cutoff: 2 per server. There is no
  ``sweep``: memcached drops expired items by itself.

Lifetimes: a session item lives until its session's ``expires_ms`` (plus a second), a
tombstone until its own (shorter) ``expires_ms``, the marker and the index at least
until the latest of them (the marker 30 days more, so it is rewritten about once a
month per key). Lifetimes are computed from the caller's clock, like the Redis store's
TTL; above 30 days memcached takes an absolute Unix time, computed from this machine's
clock (a memcached host whose clock runs ahead shortens them by the difference).

Memcached evicts items under memory pressure (unless started with ``-M``):

- an evicted session item: that browser is logged out;
- an evicted marker: every session of that key fails verification until the next login,
  ``list`` or ``revoke_all`` of the key rewrites the marker from the index (which
  brings back the sessions the index lists; never a revoked one, each of which is
  tombstoned or gone);
- an evicted index: its sessions cannot be listed, so the next operation that reads it
  (a login, ``list``, ``revoke_all`` of that key) starts a new generation, which ends
  every session of the key at once (``revoke_all`` then keeps ``keep`` but cannot name
  the others and returns ``[]``). Until then those sessions keep working, but no session
  is ever beyond the reach of ``revoke_all``;
- an evicted cutoff: every session of that server is logged out (see above). Read by
  every verification of the server, it sits at the busy end of memcached's LRU.

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
from .errors import StoreUnavailable, TooManySessions
from .session import Session, pack_record, unpack_record

log = logging.getLogger(__name__)

T = TypeVar("T")
# The class's ``list`` method hides the builtin in annotations after it.
SessionIds = list[str]

DEFAULT_PORT = 11211
# Tries of one compare-and-swap step before the call gives up with StoreUnavailable.
CAS_ATTEMPTS = 16
GEN_BYTES = 8
EPOCH_BYTES = 8
# An item's value starts with its key's generation, then its server's epoch.
PREFIX_BYTES = GEN_BYTES + EPOCH_BYTES
# The cutoff of an epoch nobody revoked everyone in.
NO_CUTOFF = -1
# The item of a session ended without a tombstone (a logout, a rotation): read as none.
TOMBSTONE = b""
# Long enough for a concurrent touch to find it (its cas fails either way), short
# enough not to fill memory with ended sessions.
TOMBSTONE_TTL = 10
# The marker outlives the latest session by this much, so it is rewritten rarely.
MARKER_SLACK_MS = 30 * 24 * 3600 * 1000
# memcached reads an exptime above this as an absolute Unix time.
MAX_RELATIVE_EXPTIME = 30 * 24 * 3600
# What revoke_all did with one listed item.
_ENDED, _KEPT, _GONE, _DOOMED = "ended", "kept", "gone", "doomed"


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
    """The session (or stored tombstone) in an item value, or ``None`` for a logout's
    empty item or unreadable data."""
    if len(value) <= PREFIX_BYTES:
        return None
    try:
        return unpack_record(session_id, value[PREFIX_BYTES:])
    except ValueError:
        return None


class _Cutoff(NamedTuple):
    present: bool
    cas: Any
    epoch: bytes | None  # None: missing or unreadable, so no session of the server counts
    ms: int  # sessions of this epoch created at or before it are dead


def _parse_cutoff(value: Any, cas: Any = None) -> _Cutoff:
    if value is None:
        return _Cutoff(False, cas, None, NO_CUTOFF)
    try:
        if len(value) <= EPOCH_BYTES:
            raise ValueError("too short")
        return _Cutoff(True, cas, bytes(value[:EPOCH_BYTES]), int(value[EPOCH_BYTES:]))
    except ValueError:
        return _Cutoff(True, cas, None, NO_CUTOFF)


def _cutoff_value(epoch: bytes, ms: int) -> bytes:
    return epoch + str(ms).encode("ascii")


def _current(value: bytes, gen: bytes | None, cutoff: _Cutoff) -> bool:
    """Whether an item is of its key's generation ``gen`` and its server's epoch."""
    return (
        gen is not None
        and cutoff.epoch is not None
        and value[:GEN_BYTES] == gen
        and value[GEN_BYTES:PREFIX_BYTES] == cutoff.epoch
    )


def _shown(stored: Session, current: bool, cutoff: _Cutoff) -> Session | None:
    """What ``get`` and ``list`` give of a decoded item: a stored tombstone as it is (it
    is dead whatever else holds); a session that is not ``current`` (of an ended
    generation or epoch) not at all; one that ``revoke_everyone`` ended as a
    ``"revoked"`` tombstone."""
    if stored.ended is not None:
        return stored
    if not current:
        return None
    if stored.created_ms <= cutoff.ms:
        return stored.tombstone("revoked", cutoff.ms)
    return stored


def _stone(prefix: bytes, stored: Session, reason: str, now_ms: int) -> tuple[bytes, int]:
    """The item value and exptime of ``stored`` turned into a tombstone."""
    stone = stored.tombstone(reason, now_ms)
    return prefix + pack_record(stone), _exptime(stone.expires_ms - now_ms)


class _Room(NamedTuple):
    """What a login at the cap ends, decided before anything is written."""

    entries: list[list[Any]]  # what stays listed: the live (victims too), other keys'
    doomed: dict[str, str]  # id -> item name: dead or unreadable, deleted
    dropped: set[str]  # ids whose item is gone already: only unlisted
    victims: list[tuple[str, str, Any, Session]]  # (id, item name, cas, session), oldest first
    prefix: bytes  # of the victims' items: generation and epoch


class _Carried:
    """The session a login replaces (the one its browser carried): ended only if its
    token digest is the one given."""

    def __init__(self, session_id: str | None, name: str | None, token_digest: bytes | None):
        self.id = session_id
        self.name = name
        self.token_digest = token_digest or b""
        self.pending = session_id is not None  # not yet ended nor found absent
        self.cas: Any = None
        self.live = False
        self.ended: list[str] = []  # [id] once ended, if it was live

    def names(self) -> list[str]:
        return [self.name] if self.pending and self.name is not None else []

    def check(
        self,
        got: dict[str, tuple[Any, Any]],
        gen: bytes,
        cutoff: _Cutoff,
        now_ms: int,
        idle_ms: int,
    ) -> str | None:
        """Its id if it is there with the right token (to be ended), else ``None``."""
        if not self.pending or self.id is None or self.name is None:
            return None
        value, self.cas = got.get(self.name, (None, None))
        old = None if value is None else _decode(self.id, value)
        if old is None or not hmac.compare_digest(old.token_digest, self.token_digest):
            self.pending = False
            return None
        shown = _shown(old, _current(value, gen, cutoff), cutoff)
        self.live = shown is not None and shown.is_live(now_ms, idle_ms)
        return self.id


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

    def cutoff_key(self) -> str:
        """The revoke-everyone cutoff: one item of this name on every server."""
        return f"{self.key_prefix}everyone"

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
        evict: bool = True,
    ) -> list[str]:
        node = self.node_for(key_digest)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        item_name = self.item_key(key_digest, session.id)
        replace_name = None if replace_id is None else self.item_key(key_digest, replace_id)
        carried = _Carried(replace_id, replace_name, replace_token_digest)
        record = pack_record(session)
        item_exptime = _exptime(session.expires_ms - now_ms)
        added: bytes | None = None  # the prefix our item carries, once stored
        gone: set[str] = set()  # ids this call unlisted for good
        evicted: list[str] = []  # live ids this call tombstoned, oldest first
        try:
            for attempt in range(CAS_ATTEMPTS):
                if attempt:
                    _backoff(attempt)
                names = [index_name, marker_name, self.cutoff_key(), *carried.names()]
                got = self._gets(node, names)
                index, marker = _parse_index(got, index_name), _parse_marker(got, marker_name)
                plan = self._plan_login(
                    node, key_digest, session, got, index, carried, gone,
                    max_sessions=max_sessions, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
                    evict=evict,
                )  # fmt: skip
                if plan is None:
                    continue  # the cutoff was written by someone else meanwhile: read it
                gen, entries, room, cutoff = plan

                # 3. End what must end, all *before* the index forgets it.
                if not self._end_carried(node, carried, gone):
                    continue  # touched meanwhile: read it again
                if room is not None:
                    kept = self._make_room(node, room, gone, evicted, now_ms)
                    if kept is None:
                        continue  # a victim was touched meanwhile: read everything again
                    entries = kept

                # 4. Our session, stored before it is listed: its token is handed out
                # only once it is listed, so an unlisted session is never usable.
                prefix = gen + (cutoff.epoch or b"")
                if added != prefix:
                    self._store_item(node, item_name, prefix + record, item_exptime, added)
                    added = prefix

                # 5. List it; the marker follows the index (and outlives its sessions).
                entries.append([session.id, session.created_ms, session.expires_ms])
                if not self._write_index(node, key_digest, index, gen, entries, now_ms):
                    continue
                if self._follow(node, key_digest, marker, gen, max(e[2] for e in entries), now_ms):
                    return carried.ended + evicted
                # The index was lost and rebuilt meanwhile: list our session again.
            raise _contention("login")
        except BaseException:
            if added is not None:
                self._discard(node, item_name)
            raise

    def _plan_login(
        self,
        node: _Node,
        key_digest: str,
        session: Session,
        got: dict[str, tuple[Any, Any]],
        index: _Index,
        carried: _Carried,
        gone: set[str],
        *,
        max_sessions: int,
        now_ms: int,
        idle_timeout_ms: int,
        evict: bool,
    ) -> tuple[bytes, list[list[Any]], _Room | None, _Cutoff] | None:
        """Steps 1 and 2 of a login: its generation, the entries that stay listed, the
        room to make at the cap and the server's cutoff. What ends is decided before
        anything is written, so that ``evict=False`` refuses having written nothing:
        the carried session, then at the cap the dead and the oldest live ones.
        ``None`` if the cutoff was written meanwhile."""
        cutoff = self._login_cutoff(node, got)
        if cutoff is None:
            return None
        # 1. The generation is the index's; an index that is missing or unreadable
        # starts a new one (see the module docstring).
        if index.gen is not None:
            gen, entries = index.gen, index.entries
        else:
            gen, entries = secrets.token_bytes(GEN_BYTES), []
        # 2. The carried session makes room; then the dead, then the oldest live ones.
        hit = carried.check(got, gen, cutoff, now_ms, idle_timeout_ms)
        entries = [e for e in entries if e[0] not in gone and e[0] != hit]
        if len(entries) < max_sessions:
            return gen, entries, None, cutoff
        room = self._plan_room(
            node, key_digest, session.key, entries, gen, cutoff,
            max_sessions=max_sessions, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
        )  # fmt: skip
        if room.victims and not evict:
            raise TooManySessions()
        return gen, entries, room, cutoff

    def _login_cutoff(self, node: _Node, got: dict[str, tuple[Any, Any]]) -> _Cutoff | None:
        """The server's cutoff. When it is missing or unreadable (a new server, or
        memcached evicted it), write one of a new epoch, which ends every session the
        server holds. ``None`` if another writer got there first."""
        name = self.cutoff_key()
        cutoff = _parse_cutoff(*got.get(name, (None, None)))
        if cutoff.epoch is not None:
            return cutoff
        log.warning(
            "memcached: no revoke-everyone cutoff on %s (a new server, or evicted): "
            "a new epoch ends every session it held",
            node.name,
        )
        fresh = _Cutoff(True, None, secrets.token_bytes(EPOCH_BYTES), NO_CUTOFF)
        if self._write_cutoff(node, cutoff, fresh):
            return fresh
        return None

    def _write_cutoff(self, node: _Node, old: _Cutoff, new: _Cutoff) -> bool:
        """``cas`` (or ``add``) the cutoff item, with no expiry; ``False`` if another
        writer got there first."""
        assert new.epoch is not None
        name, value = self.cutoff_key(), _cutoff_value(new.epoch, new.ms)
        if old.present:
            return bool(self._cas(node, name, value, old.cas, 0))
        return self._add(node, name, value, 0)  # 0: never expires

    def _end_carried(self, node: _Node, carried: _Carried, gone: set[str]) -> bool:
        """Delete the carried session if it was found with its token (its item
        emptied, as a logout does); ``False`` if it was touched meanwhile."""
        if not carried.pending or carried.name is None or carried.id is None:
            return True
        result = self._cas(node, carried.name, TOMBSTONE, carried.cas, TOMBSTONE_TTL)
        if result is False:
            return False
        if result and carried.live:
            carried.ended = [carried.id]  # None: ended by someone else meanwhile
        carried.pending = False
        gone.add(carried.id)
        return True

    def _store_item(
        self, node: _Node, name: str, value: bytes, exptime: int, added: bytes | None
    ) -> None:
        if added is None:
            if not self._add(node, name, value, exptime):
                raise StoreUnavailable("memcached: a session id is already taken")
        else:  # a new generation (or epoch) began meanwhile: our item follows it
            self._set(node, name, value, exptime)

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

    def _plan_room(
        self,
        node: _Node,
        key_digest: str,
        key: str,
        entries: list[list[Any]],
        gen: bytes,
        cutoff: _Cutoff,
        *,
        max_sessions: int,
        now_ms: int,
        idle_timeout_ms: int,
    ) -> _Room:
        """What a login at the cap ends, as the Redis script does (one read, no
        write): entries whose item is gone, unreadable, of another generation, a
        tombstone or a dead session of ``key`` are dropped; then, while ``key`` holds
        ``max_sessions`` live sessions, the oldest (by creation time, then id) is a
        victim. Other keys' sessions (a digest collision) are neither counted nor
        dropped."""
        names = {e[0]: self.item_key(key_digest, e[0]) for e in entries}
        got = self._gets(node, list(names.values()))
        keep: list[list[Any]] = []
        live: list[tuple[int, str, Any, Session]] = []
        doomed: dict[str, str] = {}
        dropped: set[str] = set()
        for entry in entries:
            session_id = entry[0]
            value, cas = got.get(names[session_id], (None, None))
            stored = None if value is None else _decode(session_id, value)
            if stored is not None and stored.key != key:
                keep.append(entry)
                continue
            current = stored is not None and _current(value, gen, cutoff)
            shown = None if stored is None else _shown(stored, current, cutoff)
            if shown is not None and shown.is_live(now_ms, idle_timeout_ms):
                keep.append(entry)
                live.append((shown.created_ms, session_id, cas, shown))
            elif value is None or value == TOMBSTONE:
                dropped.add(session_id)  # gone, or a logout's empty item (it expires soon)
            else:
                doomed[session_id] = names[session_id]
        live.sort(key=lambda item: (item[0], item[1]))
        victims = live[: max(0, len(live) - max_sessions + 1)]
        victim_items = [(v[1], names[v[1]], v[2], v[3]) for v in victims]
        return _Room(keep, doomed, dropped, victim_items, gen + (cutoff.epoch or b""))

    def _make_room(
        self,
        node: _Node,
        room: _Room,
        gone: set[str],
        evicted: list[str],
        now_ms: int,
    ) -> list[list[Any]] | None:
        """Delete the dead; turn the victims into "evicted" tombstones, still listed
        (their browsers can be told, and the next login at the cap drops them). Adds to
        ``gone`` and ``evicted``; the entries to keep, or ``None`` if a victim changed
        meanwhile (a failure here leaves a listed dead entry, never an unlisted live
        session; the price: a login that then fails may already have evicted)."""
        self._delete_many(node, list(room.doomed.values()))
        gone.update(room.dropped, room.doomed)
        for session_id, name, cas, stored in room.victims:
            value, exptime = _stone(room.prefix, stored, "evicted", now_ms)
            result = self._cas(node, name, value, cas, exptime)
            if result is False:
                return None
            if result:
                evicted.append(session_id)  # None: ended by someone else meanwhile
        return room.entries

    def _discard(self, node: _Node, name: str) -> None:
        """Best effort: remove our own unlisted item after a failed login."""
        # Unlisted, its token never handed out: if this fails too, it expires unused.
        with contextlib.suppress(StoreUnavailable):
            node.run("delete", lambda c: c.delete(name, noreply=False))

    def get(self, key_digest: str, session_id: str) -> Session | None:
        item_name, marker_name = self.item_key(key_digest, session_id), self.marker_key(key_digest)
        names = [item_name, marker_name, self.cutoff_key()]
        node = self.node_for(key_digest)
        got: dict[str, bytes] = node.run("get", lambda c: c.get_many(names))
        value, marker = got.get(item_name), got.get(marker_name)
        if not value:
            return None  # gone, or a logout's empty item
        cutoff = _parse_cutoff(got.get(self.cutoff_key()))
        current = marker is not None and _current(value, marker[:GEN_BYTES], cutoff)
        stored = _decode(session_id, value)
        if stored is None:
            if current:
                raise ValueError(f"corrupt session item {item_name}")
            return None  # unreadable, and of an ended generation or epoch anyway
        return _shown(stored, current, cutoff)

    def touch(
        self, key_digest: str, session_id: str, last_seen_ms: int, *, min_interval_ms: int = 0
    ) -> bool:
        item_name, marker_name = self.item_key(key_digest, session_id), self.marker_key(key_digest)
        cutoff_name = self.cutoff_key()
        node = self.node_for(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            got = self._gets(node, [item_name, marker_name, cutoff_name])
            value, cas = got.get(item_name, (None, None))
            marker = got.get(marker_name, (None, None))[0]
            stored = None if value is None else _decode(session_id, value)
            if stored is None or marker is None:
                return False
            cutoff = _parse_cutoff(got.get(cutoff_name, (None, None))[0])
            shown = _shown(stored, _current(value, marker[:GEN_BYTES], cutoff), cutoff)
            if shown is None or shown.ended is not None:
                return False  # ended: a tombstone stays as it is
            if last_seen_ms < stored.last_seen_ms + max(min_interval_ms, 1):
                return True
            new = value[:PREFIX_BYTES] + pack_record(stored.seen_at(last_seen_ms))
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
        got = self._gets(node, [index_name, marker_name, self.cutoff_key()])
        index, marker = _parse_index(got, index_name), _parse_marker(got, marker_name)
        cutoff = _parse_cutoff(got.get(self.cutoff_key(), (None, None))[0])
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
            if value == TOMBSTONE:
                continue
            stored, current = _decode(names[name], value), _current(value, gen, cutoff)
            if stored is None:
                if current:
                    log.warning("skipping an unreadable session item %s", name)
                continue
            shown = _shown(stored, current, cutoff)
            if shown is not None:
                sessions.append(shown)
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
        tombstone: bool = False,
    ) -> bool:
        """End one session; with ``token_digest``, only if it is that session's; with
        ``key``, only if it is a session of that key (two keys' digests may collide).
        With ``tombstone``, a live session becomes a "revoked" tombstone (still listed);
        else, and for a dead one, its item is emptied and unlisted."""
        node = self.node_for(key_digest)
        item_name = self.item_key(key_digest, session_id)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        names = [item_name, marker_name, index_name, self.cutoff_key()]
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            got = self._gets(node, names)
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
            cutoff = _parse_cutoff(got.get(self.cutoff_key(), (None, None))[0])
            current = _current(value, _parse_marker(got, marker_name).gen, cutoff)
            shown = None if stored is None else _shown(stored, current, cutoff)
            if tombstone and shown is not None and shown.ended is not None:
                return False  # already a tombstone: it keeps telling its browser why
            was_live = shown is not None and shown.is_live(now_ms, idle_timeout_ms)
            new, exptime = TOMBSTONE, TOMBSTONE_TTL
            if tombstone and was_live and stored is not None:
                new, exptime = _stone(value[:PREFIX_BYTES], stored, "revoked", now_ms)
            result = self._cas(node, item_name, new, cas, exptime)
            if result is None:
                return False  # ended meanwhile by someone else
            if result:
                break
            # Touched meanwhile: read it again (the token and the key do not change).
        else:
            raise _contention("revoke")
        if new == TOMBSTONE:
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
    ) -> SessionIds:
        """End every session but ``keep``: the live ones become "revoked" tombstones,
        the dead ones go (tombstones stay); with ``key``, only sessions of that key.
        Returns the ids of the live ones ended ([] after a lost index: see the module
        docstring)."""
        node = self.node_for(key_digest)
        index_name, marker_name = self.index_key(key_digest), self.marker_key(key_digest)
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            got = self._gets(node, [index_name, marker_name, self.cutoff_key()])
            index, marker = _parse_index(got, index_name), _parse_marker(got, marker_name)
            cutoff = _parse_cutoff(got.get(self.cutoff_key(), (None, None))[0])
            if index.gen is None:
                if marker.gen is None:
                    return []  # no generation: no session of this key is valid
                if self._repair_keeping(
                    node, key_digest, index, marker, cutoff, keep, key, now_ms
                ):
                    return []
                continue
            if marker.gen == index.gen:
                break
            needed = max((e[2] for e in index.entries), default=now_ms)
            if self._follow(node, key_digest, marker, index.gen, needed, now_ms):
                break
        else:
            raise _contention("revoke_all")
        targets = [e[0] for e in index.entries if e[0] != keep]
        names = {session_id: self.item_key(key_digest, session_id) for session_id in targets}
        items = self._gets(node, list(names.values()))
        ended: list[str] = []
        unlisted: set[str] = set()
        doomed: list[str] = []
        for session_id in targets:
            value, cas = items.get(names[session_id], (None, None))
            outcome = self._end_listed(
                node, names[session_id], session_id, value, cas, index.gen, cutoff,
                key=key, now_ms=now_ms, idle_timeout_ms=idle_timeout_ms,
            )  # fmt: skip
            if outcome == _ENDED:
                ended.append(session_id)
            elif outcome != _KEPT:
                unlisted.add(session_id)
                if outcome == _DOOMED:
                    doomed.append(names[session_id])
        self._delete_many(node, doomed)
        self._unlist(node, key_digest, got, unlisted, now_ms=now_ms)
        return ended

    def _end_listed(
        self,
        node: _Node,
        name: str,
        session_id: str,
        value: Any,
        cas: Any,
        gen: bytes,
        cutoff: _Cutoff,
        *,
        key: str | None,
        now_ms: int,
        idle_timeout_ms: int,
    ) -> str:
        """``revoke_all`` of one listed item: a live session becomes a "revoked"
        tombstone (``_ENDED``: by us; a concurrent call that wins the ``cas`` counts
        it, not we), a tombstone or another key's session is ``_KEPT``, a gone one
        ``_GONE``, anything else dead or unreadable ``_DOOMED`` (deleted)."""
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
                value, cas = self._gets(node, [name]).get(name, (None, None))
            if value is None or value == TOMBSTONE:
                return _GONE
            stored = _decode(session_id, value)
            if stored is not None and key is not None and stored.key != key:
                return _KEPT  # another key's session: it stays listed
            if stored is None or not _current(value, gen, cutoff):
                return _DOOMED  # nobody's (unreadable), or of an ended generation or epoch
            shown = _shown(stored, True, cutoff)
            if shown is not None and shown.ended is not None:
                return _KEPT  # a tombstone (or one revoke_everyone ended) keeps telling why
            if shown is None or not shown.is_live(now_ms, idle_timeout_ms):
                return _DOOMED
            new, exptime = _stone(value[:PREFIX_BYTES], stored, "revoked", now_ms)
            result = self._cas(node, name, new, cas, exptime)
            if result is None:
                return _GONE  # ended by someone else meanwhile
            if result:
                return _ENDED
            # Touched meanwhile: read it again.
        raise _contention("revoke_all")

    def _repair_keeping(
        self,
        node: _Node,
        key_digest: str,
        index: _Index,
        marker: _Marker,
        cutoff: _Cutoff,
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
                and _current(keep_value, marker.gen, cutoff)
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

    def revoke_everyone(self, *, now_ms: int) -> None:
        """Raise the cutoff of every server to ``now_ms`` (never lower it). Every server
        is tried; if any failed, :class:`~pyramid_jeff.StoreUnavailable` names them
        once all were tried (the others have it: call again until it succeeds)."""
        failed: list[str] = []
        for node in self.nodes.values():
            try:
                self._raise_cutoff(node, now_ms)
            except StoreUnavailable as exc:
                failed.append(str(exc))
        if failed:
            raise StoreUnavailable(
                f"memcached: revoke_everyone failed on {len(failed)} of {len(self.nodes)} "
                f"servers, whose sessions still work: {'; '.join(failed)}"
            )

    def _raise_cutoff(self, node: _Node, now_ms: int) -> None:
        name = self.cutoff_key()
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                _backoff(attempt)
            cutoff = _parse_cutoff(*self._gets(node, [name]).get(name, (None, None)))
            if cutoff.epoch is not None and cutoff.ms >= now_ms:
                return
            # A missing cutoff ended every session of the server: a new epoch says so.
            epoch = cutoff.epoch or secrets.token_bytes(EPOCH_BYTES)
            if self._write_cutoff(node, cutoff, _Cutoff(True, None, epoch, now_ms)):
                return
        raise _contention(f"revoke_everyone on {node.name}")

    def stats(self) -> dict[str, int | str]:
        """Cheap facts: per server ``curr_items``, ``bytes``, ``evictions`` (memcached's
        ``stats``) and its cutoff (``"missing"``: no session of it counts);
        ``revoked_everyone_before_ms`` is the lowest cutoff (-1: none). A server that
        cannot answer is named with ``error``, not raised."""
        facts: dict[str, int | str] = {"backend": "memcached", "servers": len(self.nodes)}
        cutoffs: list[int] = []
        name = self.cutoff_key()
        for server, node in self.nodes.items():
            try:
                raw: dict[bytes, Any] = node.run("stats", lambda c: c.stats())
                value = node.run("get", lambda c: c.get(name))
            except StoreUnavailable as exc:
                facts[f"{server} error"] = str(exc)
                continue
            for fact in ("curr_items", "bytes", "evictions"):
                facts[f"{server} {fact}"] = int(raw.get(fact.encode("ascii"), 0))
            cutoff = _parse_cutoff(value)
            if cutoff.epoch is None:
                facts[f"{server} revoked_everyone_before_ms"] = "missing"
            else:
                facts[f"{server} revoked_everyone_before_ms"] = cutoff.ms
                cutoffs.append(cutoff.ms)
        facts["revoked_everyone_before_ms"] = min(cutoffs, default=NO_CUTOFF)
        return facts

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

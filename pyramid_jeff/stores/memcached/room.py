"""What a login ends to make room, decided before anything is written (so that
``evict=False`` refuses having written nothing): the session its browser carried, then
at the cap the dead and the oldest live sessions of its key."""

from __future__ import annotations

import hmac
from typing import Any, NamedTuple

from ...session import Session
from .records import TOMBSTONE, Cutoff, as_shown, decode, is_current


class Carried:
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
        cutoff: Cutoff,
        now_ms: int,
        idle_ms: int,
    ) -> str | None:
        """Its id if it is there with the right token (to be ended), else ``None``."""
        if not self.pending or self.id is None or self.name is None:
            return None
        value, self.cas = got.get(self.name, (None, None))
        old = None if value is None else decode(self.id, value)
        if old is None or not hmac.compare_digest(old.token_digest, self.token_digest):
            self.pending = False
            return None
        shown = as_shown(old, is_current(value, gen, cutoff), cutoff)
        self.live = shown is not None and shown.is_live(now_ms, idle_ms)
        return self.id


class Room(NamedTuple):
    """What a login at the cap ends."""

    entries: list[list[Any]]  # what stays listed: the live (victims too), other keys'
    doomed: dict[str, str]  # id -> item name: dead or unreadable, deleted
    dropped: set[str]  # ids whose item is gone already: only unlisted
    victims: list[tuple[str, str, Any, Session]]  # (id, item name, cas, session), oldest first
    prefix: bytes  # of the victims' items: generation and epoch


def plan_room(
    entries: list[list[Any]],
    names: dict[str, str],
    got: dict[str, tuple[Any, Any]],
    key: str,
    gen: bytes,
    cutoff: Cutoff,
    *,
    max_sessions: int,
    now_ms: int,
    idle_timeout_ms: int,
) -> Room:
    """What a login at the cap ends, as the Redis script does, from one read of the
    listed items (``names``: id -> item name; ``got``: their values and cas): entries
    whose item is gone, unreadable, of another generation, a tombstone or a dead session
    of ``key`` are dropped; then, while ``key`` holds ``max_sessions`` live sessions,
    the oldest (by creation time, then id) is a victim. Other keys' sessions (a digest
    collision) are neither counted nor dropped."""
    keep: list[list[Any]] = []
    live: list[tuple[int, str, Any, Session]] = []
    doomed: dict[str, str] = {}
    dropped: set[str] = set()
    for entry in entries:
        session_id = entry[0]
        value, cas = got.get(names[session_id], (None, None))
        stored = None if value is None else decode(session_id, value)
        if stored is not None and stored.key != key:
            keep.append(entry)
            continue
        current = stored is not None and is_current(value, gen, cutoff)
        shown = None if stored is None else as_shown(stored, current, cutoff)
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
    return Room(keep, doomed, dropped, victim_items, gen + (cutoff.epoch or b""))

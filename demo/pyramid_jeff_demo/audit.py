"""The audit trail: every login and every session that ended, on the admin page and in the log.

A subscriber to pyramid_jeff's events (registered in ``pyramid_jeff_demo.main``). It keeps the
session key, the public session id and why a session ended: never a token, which the events do
not carry. The log line names the key by a short hash, so that logs shipped elsewhere hold no
email addresses yet still let one follow a user.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pyramid_jeff.events import EveryoneRevoked, SessionCreated, SessionEnded

if TYPE_CHECKING:
    from pyramid.registry import Registry

log = logging.getLogger("pyramid_jeff_demo.audit")

Event = SessionCreated | SessionEnded | EveryoneRevoked
# Where main() puts this application's trail in its registry.
REGISTRY_KEY = "pyramid_jeff_demo.audit_trail"


@dataclass(frozen=True)
class Entry:
    at: datetime
    event: str  # "created", "ended" or "everyone"
    key: str = ""
    session_id: str = ""
    reason: str = ""  # of "ended": logout, revoked, replaced or evicted


def key_hash(key: str) -> str:
    """Who, in a log line: stable per key, but not the email address itself."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class AuditTrail:
    """``config.add_subscriber(trail, SessionCreated)`` (and SessionEnded, EveryoneRevoked).

    The newest ``size`` entries of this process, newest first: enough for the admin page. A real
    application writes them to its database or log pipeline instead.
    """

    def __init__(self, size: int = 100) -> None:
        self._entries: deque[Entry] = deque(maxlen=size)
        # Waitress serves requests in threads: a page must not list the deque while a login
        # appends to it.
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        now = datetime.now(timezone.utc)
        if isinstance(event, SessionCreated):
            entry = Entry(now, "created", event.key, event.session_id)
        elif isinstance(event, SessionEnded):
            entry = Entry(now, "ended", event.key, event.session_id, event.reason)
        else:
            entry = Entry(now, "everyone")
        with self._lock:
            self._entries.appendleft(entry)
        # One key=value line per event (easy to grep and to parse): who, which session, why.
        log.info(
            "event=%s key=%s session_id=%s reason=%s",
            entry.event,
            key_hash(entry.key) if entry.key else "-",
            entry.session_id or "-",
            entry.reason or "-",
        )

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)


def audit_trail(registry: Registry) -> AuditTrail:
    trail: AuditTrail = registry[REGISTRY_KEY]
    return trail

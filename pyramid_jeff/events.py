"""Events about login sessions, for ``config.add_subscriber``.

Sent with ``registry.notify`` after the store has been written, from requests and from
scripts alike (``request`` is then ``None``). A subscriber that raises is logged and
does not undo the write, nor keep the other subscribers from running::

    from pyramid.events import subscriber
    from pyramid_jeff.events import SessionCreated, SessionEnded

    @subscriber(SessionEnded)
    def audit(event):
        log.info("session %s ended: %s", event.session_id, event.reason)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

EndReason = Literal["logout", "revoked", "replaced", "evicted"]


class EventSink(Protocol):
    """Where a :class:`~pyramid_jeff.SessionManager` sends its events."""

    def listens(self, event_type: type) -> bool: ...

    def notify(self, event: object) -> None: ...


class SessionCreated:
    """``remember()`` (or ``SessionManager.create``) stored ``session``."""

    def __init__(self, request: Any, session: Session) -> None:
        self.request = request
        self.session = session

    @property
    def key(self) -> str:
        return self.session.key

    @property
    def session_id(self) -> str:
        return self.session.id

    def __repr__(self) -> str:
        return f"<SessionCreated key={self.session.key!r} session_id={self.session.id!r}>"


class SessionEnded:
    """A live session of ``key`` ended before its time, for ``reason``:

    - ``"logout"``: ``forget()`` in its browser (also a login whose response never
      left: nobody held its cookie);
    - ``"revoked"``: ``request.jeff.revoke()`` / ``revoke_all()`` (and ``pjeff``);
    - ``"replaced"``: a new login in the same browser;
    - ``"evicted"``: a login past ``jeff.max_sessions`` ended the key's oldest.

    Sessions that simply expire or go idle send nothing (no request sees them end).
    """

    def __init__(self, request: Any, key: str, session_id: str, reason: EndReason) -> None:
        self.request = request
        self.key = key
        self.session_id = session_id
        self.reason = reason

    def __repr__(self) -> str:
        return (
            f"<SessionEnded key={self.key!r} session_id={self.session_id!r} "
            f"reason={self.reason!r}>"
        )


class EveryoneRevoked:
    """``revoke_everyone()`` ended every session created at or before ``before_ms``
    (milliseconds since the epoch). One event: the store cannot name the sessions it
    ended without the scan that ``revoke_everyone`` avoids."""

    def __init__(self, request: Any, before_ms: int) -> None:
        self.request = request
        self.before_ms = before_ms

    def __repr__(self) -> str:
        return f"<EveryoneRevoked before_ms={self.before_ms}>"


class RegistryEvents:
    """Sends events with a Pyramid registry's subscribers, each one guarded."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def listens(self, event_type: type) -> bool:
        """Whether any subscriber would receive an event of ``event_type``."""
        from zope.interface import implementedBy

        return bool(self.registry.adapters.subscriptions((implementedBy(event_type),), None))

    def notify(self, event: object) -> None:
        from zope.interface import providedBy

        # As registry.notify, but one raising subscriber neither stops the others nor
        # reaches the caller, whose store write is done.
        for handler in self.registry.adapters.subscriptions((providedBy(event),), None):
            try:
                handler(event)
            except Exception:
                log.exception("a subscriber to %s raised", type(event).__name__)

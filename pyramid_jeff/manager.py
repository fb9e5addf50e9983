"""The session manager: logins, verification and revocation over any store.

Framework-free: usable from Pyramid (``request.jeff``), from scripts and from tests.
"""

from __future__ import annotations

import copy
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .credentials import Credential, is_session_id, key_digest, normalize_key
from .errors import TooManySessions
from .events import EndReason, EventSink, EveryoneRevoked, SessionCreated, SessionEnded
from .session import Session, check_max_age, new_session, pack_meta
from .stores.protocol import SessionStore

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 30 * 24 * 3600
DEFAULT_MAX_SESSIONS = 32
MAX_TOUCH_INTERVAL_MS = 60_000
# What to do with a login past max_sessions.
MAX_SESSIONS_POLICIES = ("evict", "reject")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SessionManager:
    """Create, verify, list and revoke the login sessions of application keys.

    :param store: a :class:`~pyramid_jeff.stores.SessionStore`.
    :param max_age: absolute lifetime of a session, in seconds.
    :param idle_timeout: seconds without a request after which a session is dead
        (``0``: no idle timeout).
    :param max_sessions: sessions one key may hold.
    :param max_sessions_policy: ``"evict"`` (a login past ``max_sessions`` ends the
        key's oldest session) or ``"reject"`` (it raises
        :class:`~pyramid_jeff.TooManySessions`).
    :param events: where :mod:`pyramid_jeff.events` go (``None``: nowhere);
        ``request.jeff`` sends them to the application's subscribers.
    :param clock: milliseconds since the epoch (tests move it).
    """

    # The request this manager acts for (see bind()); events carry it.
    request: Any = None

    def __init__(
        self,
        store: SessionStore,
        *,
        max_age: int = DEFAULT_MAX_AGE,
        idle_timeout: int = 0,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_sessions_policy: str = "evict",
        events: EventSink | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        if idle_timeout < 0:
            raise ValueError("idle_timeout must not be negative")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        if max_sessions_policy not in MAX_SESSIONS_POLICIES:
            raise ValueError(
                f"max_sessions_policy must be evict or reject, not {max_sessions_policy!r}"
            )
        self.store = store
        self.max_age = max_age
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.max_sessions_policy = max_sessions_policy
        self.events = events
        self.clock = clock
        self.max_age_ms = max_age * 1000
        self.idle_timeout_ms = idle_timeout * 1000
        # last_seen is refreshed at most this often, so a read-only request writes
        # nothing; a quarter of the idle timeout keeps an active user from timing out.
        quarter = self.idle_timeout_ms // 4  # 0 without an idle timeout
        self.touch_interval_ms = min(MAX_TOUCH_INTERVAL_MS, quarter or MAX_TOUCH_INTERVAL_MS)

    def bind(self, request: Any) -> SessionManager:
        """This manager, acting for ``request``: its events carry it."""
        bound = copy.copy(self)
        bound.request = request
        return bound

    def create(
        self,
        key: str | int,
        *,
        meta: Mapping[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        replacing: Credential | None = None,
        max_age: int | None = None,
        ending: Sequence[Credential] = (),
        evict: bool | None = None,
    ) -> tuple[Session, Credential]:
        """Log ``key`` in: store a new session and return it with its credential.

        ``max_age`` (seconds) is this session's absolute lifetime, default
        :attr:`max_age`.

        ``replacing`` is the credential the browser carried: its session is ended (no
        fixation), in the same atomic store operation when the key is the same.
        ``ending`` are credentials the caller ends soon after: those of this key do not
        count against ``max_sessions``, so that they, not another device, make room.
        Validation errors (``TypeError``/``ValueError``) are raised before any write;
        :class:`~pyramid_jeff.TooManySessions` when the key is full and the policy is
        ``reject`` (or ``evict=False``; ``None``: the policy's choice). Nothing is
        written then.
        """
        text_key = normalize_key(key)
        lifetime_ms = self.max_age_ms if max_age is None else check_max_age(max_age) * 1000
        packed_meta = pack_meta(meta)
        credential = Credential.mint(text_key)
        now = self.clock()
        session = new_session(credential, text_key, now, lifetime_ms, ip, user_agent, packed_meta)
        same_key = replacing is not None and replacing.key_digest == credential.key_digest
        replaced = replacing if same_key else None
        try:
            ended = self.store.create(
                credential.key_digest,
                session,
                max_sessions=self.max_sessions
                + sum(1 for c in ending if c.key_digest == credential.key_digest),
                now_ms=now,
                idle_timeout_ms=self.idle_timeout_ms,
                replace_id=replaced.session_id if replaced else None,
                replace_token_digest=replaced.token_digest() if replaced else None,
                evict=self.max_sessions_policy == "evict" if evict is None else evict,
            )
        except TooManySessions:
            raise TooManySessions(text_key, self.max_sessions) from None
        self._notify(SessionCreated(self.request, session))
        for session_id in ended:
            reason: EndReason = (
                "replaced" if replaced and session_id == replaced.session_id else "evicted"
            )
            self._notify(SessionEnded(self.request, text_key, session_id, reason))
        if replacing is not None and not same_key:
            # Another key's session: a second write, after the new session exists, so an
            # outage between the two never leaves the browser logged out.
            self.end(replacing, reason="replaced")
        return session, credential

    def verify(self, credential: Credential) -> Session | None:
        """The live session ``credential`` proves, or ``None``: one store read.

        At most once per :attr:`touch_interval_ms` it also refreshes ``last_seen``,
        with an update-only write that cannot bring back a revoked session.
        """
        return self.check(credential)[0]

    def check(
        self, credential: Credential, *, touch: bool = True
    ) -> tuple[Session | None, str | None]:
        """As :meth:`verify`, with why it failed: ``(session, None)`` for a live one,
        else ``(None, reason)``, the reason one of ``"expired"``, ``"idle"``,
        ``"revoked"``, ``"evicted"`` (known from the record) or ``"ended"`` (no record
        this credential proves: logged out, cleaned up, or never issued). With
        ``touch=False`` the ``last_seen`` refresh is left to the caller
        (:meth:`touch_due`, :meth:`touch`)."""
        try:
            session = self.store.get(credential.key_digest, credential.session_id)
        except ValueError as exc:  # a record we cannot read proves nothing
            log.warning("unreadable session record: %s", exc)
            return None, "ended"
        if session is None or not hmac.compare_digest(
            session.token_digest, credential.token_digest()
        ):
            return None, "ended"
        now = self.clock()
        reason = session.end_reason(now, self.idle_timeout_ms)
        if reason is not None:
            return None, reason
        if touch and self.touch_due(session):
            return self.touch(credential, session)
        return session, None

    def touch_due(self, session: Session) -> bool:
        """Whether a request now should refresh ``session.last_seen``."""
        return self.clock() - session.last_seen_ms >= self.touch_interval_ms

    def touch(self, credential: Credential, session: Session) -> tuple[Session | None, str | None]:
        """Refresh ``last_seen`` of the verified ``session``: update-only, so a session
        revoked since it was read stays dead (``(None, "revoked")``)."""
        now = self.clock()
        if not self.store.touch(
            credential.key_digest, session.id, now, min_interval_ms=self.touch_interval_ms
        ):
            return None, "revoked"  # revoked between our read and our write
        return session.seen_at(now), None

    def end(
        self, credential: Credential, *, reason: EndReason = "logout", key: str | None = None
    ) -> bool:
        """End the session ``credential`` proves (logout): one write, and a read first
        only when a subscriber wants to know whose session ended and ``key`` (the
        verified session's) is not given.

        Only a session whose token digest matches is deleted, so a forged cookie naming
        someone's public session id ends nothing. ``False`` if no live session ended.
        """
        if key is None and self.events is not None and self.events.listens(SessionEnded):
            stored = self.store.get(credential.key_digest, credential.session_id)
            if stored is not None and hmac.compare_digest(
                stored.token_digest, credential.token_digest()
            ):
                key = stored.key
        ended = self.store.revoke(
            credential.key_digest,
            credential.session_id,
            now_ms=self.clock(),
            idle_timeout_ms=self.idle_timeout_ms,
            token_digest=credential.token_digest(),
        )
        if ended and key is not None:
            self._notify(SessionEnded(self.request, key, credential.session_id, reason))
        return ended

    def sessions(self, key: str | int) -> list[Session]:
        """Live sessions of ``key``, newest first."""
        text_key = normalize_key(key)
        now = self.clock()
        live = [
            session
            for session in self.store.list(key_digest(text_key))
            if session.key == text_key and session.is_live(now, self.idle_timeout_ms)
        ]
        live.sort(key=lambda s: (s.created_ms, s.id), reverse=True)
        return live

    def revoke(self, key: str | int, session_id: str) -> bool:
        """End one session of ``key``; ``True`` if it was live. Its browser is told
        ``"revoked"`` on its next request.

        A ``session_id`` that is not a ``str`` is a ``TypeError``; one that no session
        could have (wrong length or characters) is ``False``, without a store call.
        """
        text_key = normalize_key(key)
        if not is_session_id(session_id):
            return False
        ended = self.store.revoke(
            key_digest(text_key),
            session_id,
            now_ms=self.clock(),
            idle_timeout_ms=self.idle_timeout_ms,
            key=text_key,
            tombstone=True,
        )
        if ended:
            self._notify(SessionEnded(self.request, text_key, session_id, "revoked"))
        return ended

    def revoke_all(self, key: str | int, keep: str | None = None) -> int:
        """End every session of ``key`` but ``keep`` (a session id); return how many were live.

        A ``keep`` that no session could have keeps nothing; one that is not a ``str``
        (or ``None``) is a ``TypeError``.
        """
        text_key = normalize_key(key)
        if keep is not None and not is_session_id(keep):
            keep = None
        ended = self.store.revoke_all(
            key_digest(text_key),
            keep=keep,
            now_ms=self.clock(),
            idle_timeout_ms=self.idle_timeout_ms,
            key=text_key,
        )
        for session_id in ended:
            self._notify(SessionEnded(self.request, text_key, session_id, "revoked"))
        return len(ended)

    def revoke_everyone(self) -> int:
        """End every session of every key at once, without a scan (ASVS 7.4.5): each
        session created until now is dead; logins after it work as usual. Returns the
        cutoff (milliseconds since the epoch). Sends one
        :class:`~pyramid_jeff.events.EveryoneRevoked`."""
        now = self.clock()
        self.store.revoke_everyone(now_ms=now)
        if self.clock is _now_ms:
            # A login in this same millisecond would end too: let it come after.
            time.sleep(0.001)
        self._notify(EveryoneRevoked(self.request, now))
        return now

    def _notify(self, event: object) -> None:
        if self.events is not None:
            self.events.notify(event)

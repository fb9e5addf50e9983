"""The session manager: logins, verification and revocation over any store.

Framework-free: usable from Pyramid (``request.jeff``), from scripts and from tests.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .credentials import Credential, is_session_id, key_digest, normalize_key
from .session import MAX_USER_AGENT, Session, pack_meta
from .store import SessionStore

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 30 * 24 * 3600
DEFAULT_MAX_SESSIONS = 32
MAX_TOUCH_INTERVAL_MS = 60_000


MAX_LIFETIME = 400 * 24 * 3600  # browsers cap cookie lifetimes at 400 days


def check_max_age(max_age: object) -> int:
    """A session lifetime in whole seconds, 1 to 400 days; else ``TypeError``/``ValueError``."""
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise TypeError(f"max_age must be an int of seconds, not {type(max_age).__name__}")
    if not 1 <= max_age <= MAX_LIFETIME:
        raise ValueError(f"max_age must be from 1 to {MAX_LIFETIME} seconds, not {max_age}")
    return max_age


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SessionManager:
    """Create, verify, list and revoke the login sessions of application keys.

    :param store: a :class:`~pyramid_jeff.store.SessionStore`.
    :param max_age: absolute lifetime of a session, in seconds.
    :param idle_timeout: seconds without a request after which a session is dead
        (``0``: no idle timeout).
    :param max_sessions: sessions one key may hold; a login past it evicts the oldest.
    :param clock: milliseconds since the epoch (tests move it).
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        max_age: int = DEFAULT_MAX_AGE,
        idle_timeout: int = 0,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        if idle_timeout < 0:
            raise ValueError("idle_timeout must not be negative")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.store = store
        self.max_age = max_age
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.clock = clock
        self.max_age_ms = max_age * 1000
        self.idle_timeout_ms = idle_timeout * 1000
        # last_seen is refreshed at most this often, so a read-only request writes
        # nothing; a quarter of the idle timeout keeps an active user from timing out.
        self.touch_interval_ms = (
            min(MAX_TOUCH_INTERVAL_MS, self.idle_timeout_ms // 4)
            if self.idle_timeout_ms
            else MAX_TOUCH_INTERVAL_MS
        )

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
    ) -> tuple[Session, Credential]:
        """Log ``key`` in: store a new session and return it with its credential.

        ``max_age`` (seconds) is this session's absolute lifetime, default
        :attr:`max_age`.

        ``replacing`` is the credential the browser carried: its session is ended (no
        fixation), in the same atomic store operation when the key is the same.
        ``ending`` are credentials the caller ends soon after: those of this key do not
        count against ``max_sessions``, so that they, not another device, make room.
        Validation errors (``TypeError``/``ValueError``) are raised before any write.
        """
        text_key = normalize_key(key)
        lifetime_ms = self.max_age_ms if max_age is None else check_max_age(max_age) * 1000
        packed_meta = pack_meta(meta)
        credential = Credential.mint(text_key)
        now = self.clock()
        session = Session(
            key=text_key,
            id=credential.session_id,
            created_ms=now,
            last_seen_ms=now,
            expires_ms=now + lifetime_ms,
            # NUL never reaches a store: PostgreSQL text cannot hold it.
            ip=(ip or "").replace("\x00", "") or None,
            user_agent=(user_agent or "").replace("\x00", "")[:MAX_USER_AGENT] or None,
            packed_meta=packed_meta,
            token_digest=credential.token_digest(),
        )
        same_key = replacing is not None and replacing.key_digest == credential.key_digest
        replaced = replacing if same_key else None
        self.store.create(
            credential.key_digest,
            session,
            max_sessions=self.max_sessions
            + sum(1 for c in ending if c.key_digest == credential.key_digest),
            now_ms=now,
            idle_timeout_ms=self.idle_timeout_ms,
            replace_id=replaced.session_id if replaced else None,
            replace_token_digest=replaced.token_digest() if replaced else None,
        )
        if replacing is not None and not same_key:
            # Another key's session: a second write, after the new session exists, so an
            # outage between the two never leaves the browser logged out.
            self.end(replacing)
        return session, credential

    def verify(self, credential: Credential) -> Session | None:
        """The live session ``credential`` proves, or ``None``: one store read.

        At most once per :attr:`touch_interval_ms` it also refreshes ``last_seen``,
        with an update-only write that cannot bring back a revoked session.
        """
        try:
            session = self.store.get(credential.key_digest, credential.session_id)
        except ValueError as exc:  # a record we cannot read proves nothing
            log.warning("unreadable session record: %s", exc)
            return None
        if session is None or not hmac.compare_digest(
            session.token_digest, credential.token_digest()
        ):
            return None
        now = self.clock()
        if not session.is_live(now, self.idle_timeout_ms):
            return None
        if now - session.last_seen_ms >= self.touch_interval_ms:
            if not self.store.touch(
                credential.key_digest, session.id, now, min_interval_ms=self.touch_interval_ms
            ):
                return None  # revoked between our read and our write
            session = session.seen_at(now)
        return session

    def end(self, credential: Credential) -> bool:
        """End the session ``credential`` proves (logout): one write, no read.

        Only a session whose token digest matches is deleted, so a forged cookie naming
        someone's public session id ends nothing. ``False`` if no live session ended.
        """
        return self.store.revoke(
            credential.key_digest,
            credential.session_id,
            now_ms=self.clock(),
            idle_timeout_ms=self.idle_timeout_ms,
            token_digest=credential.token_digest(),
        )

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
        """End one session of ``key``; ``True`` if it was live.

        A ``session_id`` that is not a ``str`` is a ``TypeError``; one that no session
        could have (wrong length or characters) is ``False``, without a store call.
        """
        text_key = normalize_key(key)
        if not is_session_id(session_id):
            return False
        return self.store.revoke(
            key_digest(text_key),
            session_id,
            now_ms=self.clock(),
            idle_timeout_ms=self.idle_timeout_ms,
            key=text_key,
        )

    def revoke_all(self, key: str | int, keep: str | None = None) -> int:
        """End every session of ``key`` but ``keep`` (a session id); return how many were live.

        A ``keep`` that no session could have keeps nothing; one that is not a ``str``
        (or ``None``) is a ``TypeError``.
        """
        text_key = normalize_key(key)
        if keep is not None and not is_session_id(keep):
            keep = None
        return self.store.revoke_all(
            key_digest(text_key),
            keep=keep,
            now_ms=self.clock(),
            idle_timeout_ms=self.idle_timeout_ms,
            key=text_key,
        )

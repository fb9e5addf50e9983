"""What the cookie carries: a credential naming one session and proving its possession.

Cookie value: ``<key digest>.<session id>.<token>``, three fixed-length base64url fields.

- the key digest locates the hash of the application's key (the key itself never
  reaches the browser; see the security notes on guessable keys),
- the session id is the public handle of the session (the field in that hash),
- the token (256 bits from :mod:`secrets`) is the secret; the store keeps only its
  SHA-256 digest, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, field

TOKEN_BYTES = 32  # 256 bits of entropy
SESSION_ID_BYTES = 16
KEY_DIGEST_BYTES = 16  # 128 bits is ample to tell keys apart; the record holds the key
MAX_KEY_BYTES = 512

_TOKEN_CHARS = 43  # len(base64url(32 bytes)) without padding
_ID_CHARS = 22  # len(base64url(16 bytes)) without padding
_COOKIE_RE = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")
COOKIE_VALUE_LENGTH = _ID_CHARS * 2 + _TOKEN_CHARS + 2


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")


def is_session_id(value: object) -> bool:
    """Whether ``value`` could be a session id: a ``str`` of the right form.

    ``TypeError`` for anything but a ``str``, so a caller's bug is not mistaken for
    "no such session".
    """
    if not isinstance(value, str):
        raise TypeError(f"a session id is a str, not {type(value).__name__}")
    return _SESSION_ID_RE.fullmatch(value) is not None


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    # A plain hash suffices: the token has 256 bits of entropy, so there is nothing
    # for a slow password hash to protect.
    return hashlib.sha256(token.encode("ascii")).digest()


def key_digest(key: str) -> str:
    return _b64(hashlib.sha256(key.encode("utf-8")).digest()[:KEY_DIGEST_BYTES])


def normalize_key(key: object) -> str:
    """Return the session key as stored, or raise ``TypeError``/``ValueError``.

    An ``int`` (a user id) is kept as its decimal string. A key must be 1 to 512 bytes
    of UTF-8, in Unicode NFC form (so one user cannot hold two spellings of one key),
    with no control characters.
    """
    if isinstance(key, bool) or not isinstance(key, (str, int)):
        raise TypeError(f"session key must be a str or an int, not {type(key).__name__}")
    text = str(key)
    if not text:
        raise ValueError("session key must not be empty")
    if text.isascii() and text.isprintable() and len(text) <= MAX_KEY_BYTES:
        return text  # the common case (emails, ids): NFC, no controls, short enough
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"session key must be at most {MAX_KEY_BYTES} bytes of UTF-8")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in text):
        raise ValueError("session key must not contain control characters or surrogates")
    if unicodedata.normalize("NFC", text) != text:
        raise ValueError("session key must be in Unicode NFC form (unicodedata.normalize)")
    return text


@dataclass(frozen=True, slots=True)
class Credential:
    """The parsed cookie: which session, and the secret that proves it."""

    key_digest: str
    session_id: str
    # Out of repr: tracebacks that capture locals (Sentry, debug toolbars) print it.
    token: str = field(repr=False)

    @classmethod
    def mint(cls, key: str) -> Credential:
        return cls(key_digest(key), new_session_id(), new_token())

    @classmethod
    def decode(cls, value: str) -> Credential | None:
        """Parse a cookie value; anything but the exact format is ``None``."""
        if len(value) != COOKIE_VALUE_LENGTH or not _COOKIE_RE.fullmatch(value):
            return None
        digest, session_id, token = value.split(".")
        return cls(digest, session_id, token)

    def encode(self) -> str:
        return f"{self.key_digest}.{self.session_id}.{self.token}"

    def token_digest(self) -> bytes:
        return token_digest(self.token)


# Longest Authorization header value read as a bearer credential: ours are ~90 bytes.
MAX_BEARER = 256


def bearer_credential(header: str) -> Credential | None:
    """The credential of an ``Authorization: Bearer <value>`` header (``jeff.bearer``);
    ``None`` when it is oversized or malformed (anonymous, without a store call)."""
    value = header[7:].strip(" ")
    if len(header) > MAX_BEARER or not value:
        return None
    return Credential.decode(value)

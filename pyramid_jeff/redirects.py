"""Validating where a login view may send the user back to."""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urlsplit

MAX_RETURN_PATH = 2048
# Left as they are; everything else is percent-encoded: non-ASCII, and the characters
# HTML needs escaped (" ' < > `), so a path echoed into a page unescaped cannot break out
# of an attribute. (Escape it anyway where you echo it.)
_SAFE_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "\"'<>`")
_UNSAFE_RAW = re.compile(r"[\x00-\x20\x7f-\x9f\\]")  # as sent: no whitespace either
_UNSAFE_DECODED = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")  # browsers drop tabs/newlines


def safe_return_path(value: str | None, default: str = "/") -> str:
    """``value`` when it is a path on this site, else ``default``.

    Use it on every ``next``/``came_from`` parameter before redirecting. Accepted: a
    relative URL that starts with exactly one ``/``, with no scheme, no host, no
    backslash, no whitespace or control character, no ``.`` or ``..`` path segment
    (``/.//evil.com`` becomes ``//evil.com`` once normalised), at most 2048
    characters, and which stays so once percent-decoded (browsers and proxies decode
    ``%2F`` and friends). Non-ASCII characters and ``" ' < > ``` come back
    percent-encoded.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_RETURN_PATH:
        return default
    if _UNSAFE_RAW.search(value):
        return default
    once = unquote(value)
    for candidate in (value, once, unquote(once)):
        if not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
            return default
        if _UNSAFE_DECODED.search(candidate):
            return default
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return default
        if any(segment in (".", "..") for segment in parts.path.split("/")):
            return default
    # Non-ASCII (e.g. from an already-decoded query parameter) is percent-encoded so
    # the Location header stays ASCII; so are the characters HTML must escape.
    return quote(value, safe=_SAFE_CHARS)

"""Reading our cookie from the raw ``Cookie`` header and writing ``Set-Cookie`` headers.

WebOb's ``request.cookies`` is not used on purpose: it raises on one malformed foreign
cookie and silently takes the last of duplicated ones, so a crafted header could turn
into a 500 or pick which session a request carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SameSite = Literal["Strict", "Lax", "None"]

# Beyond what WSGI servers accept (waitress: 256 KiB of headers), so a header swollen by
# other cookies (a "cookie bomb" from a sibling subdomain) is still read; splitting even
# this much takes well under a millisecond.
MAX_COOKIE_HEADER = 262144


def cookie_values(header: str | None, name: str) -> list[str]:
    """Every value of cookie ``name`` in a raw ``Cookie`` header, in order.

    Empty when the cookie is absent or the header is beyond :data:`MAX_COOKIE_HEADER`.
    Callers treat more than one value, or one they cannot parse, as "not logged in".
    """
    if not header or name not in header:  # the common anonymous case: one search
        return []
    if len(header) > MAX_COOKIE_HEADER:
        return []
    values = []
    for part in header.split(";"):
        cookie_name, sep, value = part.partition("=")
        # Only ASCII blanks: str.strip() would also drop Latin-1 ones such as \xa0.
        if sep and cookie_name.strip(" \t") == name:
            values.append(value.strip(" \t"))
    return values


def find_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` if the header carries it exactly once, else ``None``."""
    values = cookie_values(header, name)
    return values[0] if len(values) == 1 else None


@dataclass(frozen=True, slots=True)
class CookieSpec:
    """How one cookie is written: name (with its prefix) and attributes."""

    name: str
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    samesite: SameSite = "Lax"
    http_only: bool = True

    @classmethod
    def build(
        cls,
        base_name: str,
        *,
        path: str = "/",
        domain: str | None = None,
        secure: bool = True,
        samesite: SameSite = "Lax",
        http_only: bool = True,
    ) -> CookieSpec:
        # __Host- makes the browser refuse the cookie unless it is Secure, Path=/ and
        # host-only, so neither a sibling subdomain nor plain http can plant or shadow it.
        if secure and path == "/" and domain is None:
            base_name = "__Host-" + base_name
        elif secure:
            # Not host-only: __Secure- still keeps plain-http pages from setting it.
            base_name = "__Secure-" + base_name
        return cls(base_name, path, domain, secure, samesite, http_only)

    def _attributes(self) -> str:
        parts = [f"Path={self.path}"]
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        if self.http_only:
            parts.append("HttpOnly")
        parts.append(f"SameSite={self.samesite}")
        return "; ".join(parts)

    def set_header(self, value: str, max_age: int | None) -> tuple[str, str]:
        lifetime = "" if max_age is None else f"; Max-Age={max_age}"
        return ("Set-Cookie", f"{self.name}={value}{lifetime}; {self._attributes()}")

    def expire_header(self) -> tuple[str, str]:
        return (
            "Set-Cookie",
            f"{self.name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
            + self._attributes(),
        )

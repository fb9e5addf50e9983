"""The demo's users and the two hooks pyramid_jeff calls: groupfinder and identity_loader.

A real application keeps users in a database; the demo keeps two in a dict so that it runs with
nothing installed. Passwords are still stored the way a real app should: salted PBKDF2 hashes,
compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from pyramid.authorization import Allow, Authenticated

if TYPE_CHECKING:
    from pyramid.request import Request

    from pyramid_jeff import Session

#: The password of every demo user. It is printed on the login page: this is a demo.
DEMO_PASSWORD = "demo"

#: Bounds of a new password: at least 12 characters (ASVS 2.1.1), at most 128 (ASVS 2.1.2), so
#: that passphrases fit and hashing stays cheap.
MIN_PASSWORD = 12
MAX_PASSWORD = 128

# Few iterations keep the test suite fast; a real application uses hundreds of thousands
# (or argon2/bcrypt) and hashes once per login, never per request.
_ITERATIONS = 20_000


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _ITERATIONS)


@dataclass(frozen=True)
class User:
    email: str
    name: str
    roles: tuple[str, ...]
    salt: bytes
    password_hash: bytes

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


def _user(email: str, name: str, roles: tuple[str, ...] = ()) -> User:
    salt = secrets.token_bytes(16)
    return User(email, name, roles, salt, _hash(DEMO_PASSWORD, salt))


#: The session key of a user is their email: unique, and what an operator types to revoke.
USERS: dict[str, User] = {
    u.email: u
    for u in (
        _user("alice@example.com", "Alice Admin", ("admin",)),
        _user("bob@example.com", "Bob Builder"),
    )
}

# Hashed when the email is unknown so that a wrong email costs as much time as a wrong password:
# response times do not tell which accounts exist.
_DUMMY = _user("nobody@example.invalid", "nobody")


def authenticate(email: str, password: str) -> User | None:
    """The user whose credentials these are, or None."""
    user = USERS.get(email.strip().lower())
    candidate = user or _DUMMY
    ok = hmac.compare_digest(_hash(password, candidate.salt), candidate.password_hash)
    return user if ok and user is not None else None


def set_password(email: str, password: str) -> None:
    """Give ``email`` a new password: a new salt and hash, in this process only (no database)."""
    salt = secrets.token_bytes(16)
    USERS[email] = replace(USERS[email], salt=salt, password_hash=_hash(password, salt))


def groupfinder(key: str, request: Request) -> list[str] | None:
    """`jeff.groupfinder`: principals of a logged-in key; None (an unknown user) is anonymous."""
    user = USERS.get(key)
    if user is None:
        return None
    return [f"role:{role}" for role in user.roles]


def load_user(session: Session, request: Request) -> User | None:
    """`jeff.identity_loader`: `request.identity` is the user record, not the session.

    Returning None for an account that no longer exists makes its live sessions anonymous at
    once, without waiting for anyone to revoke them.
    """
    return USERS.get(session.key)


class Root:
    """Root factory: who may do what. Views name a permission, never a user or a role."""

    __acl__: ClassVar[list[tuple[str, str, str]]] = [
        (Allow, Authenticated, "view"),
        (Allow, "role:admin", "admin"),
    ]

    def __init__(self, request: Request) -> None:
        self.request = request

"""Converters of ``jeff.*`` setting values (see :data:`pyramid_jeff.settings.SETTINGS`).

Each takes the key, the value as the application gave it (text from an ini file, or a
Python object) and Pyramid's ``maybe_dotted``, and returns the value coerced, or raises
a :class:`~pyramid.exceptions.ConfigurationError` whose message starts with the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool, falsey, truthy

from .cookies import SameSite

Resolve = Callable[[Any], Any]
Converter = Callable[[str, Any, Resolve], Any]

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 6265 cookie-name
_SAMESITE: dict[str, SameSite] = {"strict": "Strict", "lax": "Lax", "none": "None"}
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# SQLAlchemy dialects a session table has been tested on (an optional ``+driver`` follows).
SQL_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")
# URL options that would override the bounded jeff.redis.* settings.
_URL_OPTIONS_REFUSED = frozenset(
    {
        "socket_timeout",
        "socket_connect_timeout",
        "timeout",
        "max_connections",
        "retry_on_timeout",
        "retry_on_error",
        "socket_keepalive",
    }
)


def fail(key: str, problem: str, value: object) -> ConfigurationError:
    return ConfigurationError(f"{key}: {problem} (got {value!r})")


def boolean(key: str, value: Any, resolve: Resolve) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() not in truthy | falsey:
        raise fail(key, "expected true or false", value)
    return bool(asbool(value))


def whole_number(low: int, high: int) -> Converter:
    def convert(key: str, value: Any, resolve: Resolve) -> int:
        if isinstance(value, bool):
            raise fail(key, "expected a whole number", value)
        try:
            number = int(str(value).strip())
        except ValueError:
            raise fail(key, "expected a whole number", value) from None
        if not low <= number <= high:
            raise fail(key, f"expected a whole number from {low} to {high}", value)
        return number

    return convert


def one_of(choices: tuple[str, ...]) -> Converter:
    def convert(key: str, value: Any, resolve: Resolve) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise fail(key, f"expected one of {', '.join(choices)}", value)
        return text

    return convert


def seconds(key: str, value: Any, resolve: Resolve) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise fail(key, "expected a number of seconds", value) from None
    # Unbounded waits are what this setting exists to prevent.
    if not (math.isfinite(number) and 0 < number <= 60):
        raise fail(key, "expected seconds greater than 0 and at most 60", value)
    return number


def dotted(key: str, value: Any, resolve: Resolve) -> Callable[..., Any]:
    try:
        resolved = resolve(value)
    except (ImportError, AttributeError, ValueError) as exc:
        raise fail(key, f"cannot import it: {exc}", value) from None
    if not callable(resolved):
        raise fail(key, "expected a dotted name of a callable", value)
    return cast(Callable[..., Any], resolved)


def store(key: str, value: Any, resolve: Resolve) -> str | Callable[..., Any]:
    """A store URL (checked here, so that a typo fails at start-up) or a factory."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("memory://"):
            if text != "memory://":
                raise fail(key, "memory:// takes no address or options", value)
            return text
        if text.startswith(REDIS_SCHEMES):
            _check_redis_url(key, text)
            return text
        if text.startswith("memcached://"):
            _check_memcached_url(key, text)
            return text
        if "://" in text:
            _check_sql_url(key, text)
            return text
    return dotted(key, value, resolve)


def _check_redis_url(key: str, text: str) -> None:
    parts = urlsplit(text)
    options = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    refused = sorted(options & _URL_OPTIONS_REFUSED)
    if refused:
        problem = f"set {', '.join(refused)} with the jeff.redis.* settings, not in the URL"
        raise fail(key, problem, text)
    database = parts.path if parts.scheme != "unix" else ""
    if database not in ("", "/") and not database[1:].isdigit():
        raise fail(key, "the database must be a number, as in redis://host:6379/0", text)
    db_option = dict(parse_qsl(parts.query)).get("db")
    if db_option is not None and not db_option.isdigit():
        raise fail(key, "the db option must be a number", text)


def _check_memcached_url(key: str, text: str) -> None:
    parts = urlsplit(text)
    if parts.path not in ("", "/") or parts.query or parts.fragment or not parts.netloc:
        raise fail(key, "expected memcached://host:port[,host:port...]", text)
    for server in parts.netloc.split(","):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fail(key, f"expected host:port, not {server!r}", text)


def _check_sql_url(key: str, text: str) -> None:
    try:
        from sqlalchemy.engine import make_url
    except ImportError:
        problem = "a SQL store needs pip install 'SQLAlchemy>=2.0' (the extra pyramid_jeff[sql])"
        raise fail(key, problem, text) from None
    try:
        url = make_url(text)
    except Exception as exc:  # SQLAlchemy's ArgumentError, ValueError from a bad port
        raise fail(key, f"not a SQLAlchemy URL: {exc}", text) from None
    if url.get_backend_name() not in SQL_DIALECTS:
        raise fail(
            key,
            "expected memory://, redis://, rediss://, unix://, memcached:// or a SQLAlchemy "
            f"URL of {', '.join(SQL_DIALECTS)}",
            text,
        )


def login_url(key: str, value: Any, resolve: Resolve) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    relative = text.startswith("/") and not text.startswith("//") and not parts.netloc
    absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
    if not (relative or absolute) or any(c in text for c in "\r\n\\"):
        raise fail(key, "expected a path such as /login or an http(s) URL", value)
    return text


def cookie_name(key: str, value: Any, resolve: Resolve) -> str:
    text = str(value).strip()
    if not _TOKEN_RE.fullmatch(text) or text.lower().startswith(("__host-", "__secure-")):
        raise fail(key, "expected a cookie name without a __Host-/__Secure- prefix", value)
    return text


def samesite(key: str, value: Any, resolve: Resolve) -> SameSite:
    try:
        return _SAMESITE[str(value).strip().lower()]
    except KeyError:
        raise fail(key, "expected Strict, Lax or None", value) from None


def cookie_domain(key: str, value: Any, resolve: Resolve) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    if not re.fullmatch(r"\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        raise fail(key, "expected a domain name such as example.com", value)
    return text


def cookie_path(key: str, value: Any, resolve: Resolve) -> str:
    text = str(value).strip()
    if not text.startswith("/") or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]+", text):
        raise fail(key, "expected a path starting with /", value)
    return text


def redis_key_prefix(key: str, value: Any, resolve: Resolve) -> str:
    text = str(value)
    if "{" in text or "}" in text or any(c.isspace() for c in text):
        raise fail(key, "must not contain braces or spaces", value)
    return text


def memcached_key_prefix(key: str, value: Any, resolve: Resolve) -> str:
    text = str(value)
    # Memcached keys are at most 250 bytes of printable ASCII without spaces.
    if len(text) > 32 or not re.fullmatch(r"[\x21-\x7e]*", text):
        raise fail(key, "expected at most 32 printable ASCII characters, no spaces", value)
    return text


def table_name(key: str, value: Any, resolve: Resolve) -> str:
    text = str(value).strip()
    # A plain identifier that every SQL backend accepts unquoted (MySQL: 64 characters).
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", text):
        raise fail(key, "expected a table name of letters, digits and _", value)
    return text

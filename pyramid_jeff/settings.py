"""``jeff.*`` settings: parsed, coerced and checked once, at start-up.

Every problem is a :class:`pyramid.exceptions.ConfigurationError` that names the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from pyramid.exceptions import ConfigurationError
from pyramid.settings import asbool, falsey, truthy

from .cookies import SameSite
from .manager import DEFAULT_MAX_AGE, DEFAULT_MAX_SESSIONS, MAX_LIFETIME, MAX_SESSIONS_POLICIES
from .privacy import RECORD_IP_MODES

PREFIX = "jeff."
MAX_COOKIE_LIFETIME = MAX_LIFETIME
# At the cap a login prunes and sorts the key's sessions in one atomic step (a Lua script
# on Redis that blocks the server meanwhile): bounded so that step stays around a
# millisecond or two (see benchmarks/).
MAX_SESSIONS_LIMIT = 1000
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 6265 cookie-name
_SAMESITE: dict[str, SameSite] = {"strict": "Strict", "lax": "Lax", "none": "None"}
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# SQLAlchemy dialects a session table has been tested on (an optional ``+driver`` follows).
SQL_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb")

KNOWN = frozenset(
    {
        "jeff.store",
        "jeff.cookie_name",
        "jeff.cookie_secure",
        "jeff.cookie_samesite",
        "jeff.cookie_domain",
        "jeff.cookie_path",
        "jeff.max_age",
        "jeff.persistent",
        "jeff.idle_timeout",
        "jeff.max_sessions",
        "jeff.max_sessions_policy",
        "jeff.record_ip",
        "jeff.record_user_agent",
        "jeff.bearer",
        "jeff.login_url",
        "jeff.redirect",
        "jeff.groupfinder",
        "jeff.identity_loader",
        "jeff.csrf",
        "jeff.redis.socket_timeout",
        "jeff.redis.socket_connect_timeout",
        "jeff.redis.max_connections",
        "jeff.redis.key_prefix",
        "jeff.redis.cluster",
        "jeff.memcached.socket_timeout",
        "jeff.memcached.socket_connect_timeout",
        "jeff.memcached.max_connections",
        "jeff.memcached.key_prefix",
        "jeff.sql.table",
        "jeff.sql.timeout",
        "jeff.sql.pool_size",
    }
)


@dataclass(frozen=True)
class JeffSettings:
    store: str | Callable[..., Any] = "memory://"
    cookie_name: str = "jeff"
    cookie_secure: bool = True
    cookie_samesite: SameSite = "Lax"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    max_age: int = DEFAULT_MAX_AGE
    persistent: bool = True
    idle_timeout: int = 0
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_sessions_policy: str = "evict"
    record_ip: str = "full"
    record_user_agent: bool = True
    bearer: bool = False
    login_url: str = "/"
    redirect: Callable[..., Any] | None = None
    groupfinder: Callable[..., Any] | None = None
    identity_loader: Callable[..., Any] | None = None
    csrf: bool = False
    redis_socket_timeout: float = 1.0
    redis_socket_connect_timeout: float = 1.0
    redis_max_connections: int = 50
    redis_key_prefix: str = "jeff:"
    redis_cluster: bool = False
    memcached_socket_timeout: float = 1.0
    memcached_socket_connect_timeout: float = 1.0
    memcached_max_connections: int = 50
    memcached_key_prefix: str = "jeff:"
    sql_table: str = "jeff_sessions"
    sql_timeout: float = 1.0
    sql_pool_size: int = 10

    @property
    def store_kind(self) -> str:
        """``memory``, ``redis``, ``memcached``, ``sql`` or ``factory``."""
        return store_kind(self.store)


def _fail(key: str, problem: str, value: object) -> ConfigurationError:
    return ConfigurationError(f"{key}: {problem} (got {value!r})")


def _bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() not in truthy | falsey:
        raise _fail(key, "expected true or false", value)
    return bool(asbool(value))


def _int(key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise _fail(key, "expected a whole number", value)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise _fail(key, "expected a whole number", value) from None
    if not low <= number <= high:
        raise _fail(key, f"expected a whole number from {low} to {high}", value)
    return number


def _choice(key: str, value: object, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise _fail(key, f"expected one of {', '.join(choices)}", value)
    return text


def _seconds(key: str, value: object) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise _fail(key, "expected a number of seconds", value) from None
    # Unbounded waits are what this setting exists to prevent.
    if not (math.isfinite(number) and 0 < number <= 60):
        raise _fail(key, "expected seconds greater than 0 and at most 60", value)
    return number


def _callable(key: str, value: object, maybe_dotted: Callable[[Any], Any]) -> Callable[..., Any]:
    try:
        resolved = maybe_dotted(value)
    except (ImportError, AttributeError, ValueError) as exc:
        raise _fail(key, f"cannot import it: {exc}", value) from None
    if not callable(resolved):
        raise _fail(key, "expected a dotted name of a callable", value)
    return cast(Callable[..., Any], resolved)


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


def _check_redis_url(text: str) -> None:
    parts = urlsplit(text)
    options = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    refused = sorted(options & _URL_OPTIONS_REFUSED)
    if refused:
        raise _fail(
            "jeff.store",
            f"set {', '.join(refused)} with the jeff.redis.* settings, not in the URL",
            text,
        )
    database = parts.path if parts.scheme != "unix" else ""
    if database not in ("", "/") and not database[1:].isdigit():
        raise _fail("jeff.store", "the database must be a number, as in redis://host:6379/0", text)
    db_option = dict(parse_qsl(parts.query)).get("db")
    if db_option is not None and not db_option.isdigit():
        raise _fail("jeff.store", "the db option must be a number", text)


def store_kind(store: str | Callable[..., Any]) -> str:
    """Which store a checked ``jeff.store`` value names: ``memory``, ``redis``,
    ``memcached``, ``sql`` or ``factory``."""
    if not isinstance(store, str):
        return "factory"
    if store.startswith("memory://"):
        return "memory"
    if store.startswith(_REDIS_SCHEMES):
        return "redis"
    if store.startswith("memcached://"):
        return "memcached"
    return "sql"


def _check_memcached_url(text: str) -> None:
    parts = urlsplit(text)
    if parts.path not in ("", "/") or parts.query or parts.fragment or not parts.netloc:
        raise _fail("jeff.store", "expected memcached://host:port[,host:port...]", text)
    for server in parts.netloc.split(","):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _fail("jeff.store", f"expected host:port, not {server!r}", text)


def _check_sql_url(text: str) -> None:
    try:
        from sqlalchemy.engine import make_url
    except ImportError:
        raise _fail(
            "jeff.store", "a SQL store needs SQLAlchemy: pip install 'pyramid_jeff[sql]'", text
        ) from None
    try:
        url = make_url(text)
    except Exception as exc:  # SQLAlchemy's ArgumentError, ValueError from a bad port
        raise _fail("jeff.store", f"not a SQLAlchemy URL: {exc}", text) from None
    if url.get_backend_name() not in SQL_DIALECTS:
        raise _fail(
            "jeff.store",
            "expected memory://, redis://, rediss://, unix://, memcached:// or a SQLAlchemy "
            f"URL of {', '.join(SQL_DIALECTS)}",
            text,
        )


def _store(value: object, maybe_dotted: Callable[[Any], Any]) -> str | Callable[..., Any]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("memory://"):
            if text != "memory://":
                raise _fail("jeff.store", "memory:// takes no address or options", value)
            return text
        if text.startswith(_REDIS_SCHEMES):
            _check_redis_url(text)
            return text
        if text.startswith("memcached://"):
            _check_memcached_url(text)
            return text
        if "://" in text:
            _check_sql_url(text)
            return text
    return _callable("jeff.store", value, maybe_dotted)


def _login_url(value: object) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    relative = text.startswith("/") and not text.startswith("//") and not parts.netloc
    absolute = parts.scheme in ("http", "https") and bool(parts.netloc)
    if not (relative or absolute) or any(c in text for c in "\r\n\\"):
        raise _fail("jeff.login_url", "expected a path such as /login or an http(s) URL", value)
    return text


def parse_settings(
    settings: Mapping[str, Any], maybe_dotted: Callable[[Any], Any] = lambda v: v
) -> JeffSettings:
    """Build :class:`JeffSettings` from an application's settings (``jeff.*`` keys)."""
    unknown = sorted(k for k in settings if k.startswith(PREFIX) and k not in KNOWN)
    if unknown:
        raise ConfigurationError(
            f"{unknown[0]}: unknown pyramid_jeff setting (known: {', '.join(sorted(KNOWN))})"
        )
    # An empty value (`jeff.redirect =` in an ini file) means "not set".
    given = {k: v for k, v in settings.items() if k in KNOWN and v is not None and v != ""}
    values: dict[str, Any] = {}

    def take(key: str, convert: Callable[[str, object], Any]) -> None:
        if key in given:
            values[key[len(PREFIX) :].replace(".", "_")] = convert(key, given[key])

    take("jeff.store", lambda k, v: _store(v, maybe_dotted))
    take("jeff.cookie_name", _cookie_name)
    take("jeff.cookie_secure", _bool)
    take("jeff.cookie_samesite", _samesite)
    take("jeff.cookie_domain", _cookie_domain)
    take("jeff.cookie_path", _cookie_path)
    take("jeff.max_age", lambda k, v: _int(k, v, 1, MAX_COOKIE_LIFETIME))
    take("jeff.persistent", _bool)
    take("jeff.idle_timeout", lambda k, v: _int(k, v, 0, MAX_COOKIE_LIFETIME))
    take("jeff.max_sessions", lambda k, v: _int(k, v, 1, MAX_SESSIONS_LIMIT))
    take("jeff.max_sessions_policy", lambda k, v: _choice(k, v, MAX_SESSIONS_POLICIES))
    take("jeff.record_ip", lambda k, v: _choice(k, v, RECORD_IP_MODES))
    take("jeff.record_user_agent", _bool)
    take("jeff.bearer", _bool)
    take("jeff.login_url", lambda k, v: _login_url(v))
    for key in ("jeff.redirect", "jeff.groupfinder", "jeff.identity_loader"):
        take(key, lambda k, v: _callable(k, v, maybe_dotted))
    take("jeff.csrf", _bool)
    take("jeff.redis.socket_timeout", _seconds)
    take("jeff.redis.socket_connect_timeout", _seconds)
    take("jeff.redis.max_connections", lambda k, v: _int(k, v, 1, 10_000))
    take("jeff.redis.key_prefix", _key_prefix)
    take("jeff.redis.cluster", _bool)
    take("jeff.memcached.socket_timeout", _seconds)
    take("jeff.memcached.socket_connect_timeout", _seconds)
    take("jeff.memcached.max_connections", lambda k, v: _int(k, v, 1, 10_000))
    take("jeff.memcached.key_prefix", _memcached_key_prefix)
    take("jeff.sql.table", _table_name)
    take("jeff.sql.timeout", _seconds)
    take("jeff.sql.pool_size", lambda k, v: _int(k, v, 1, 1000))
    parsed = JeffSettings(**values)
    if parsed.redis_cluster and not (
        parsed.store_kind == "redis" and str(parsed.store).startswith(("redis://", "rediss://"))
    ):
        raise ConfigurationError(
            "jeff.redis.cluster: a cluster is reached by a redis:// or rediss:// jeff.store URL"
        )
    if parsed.cookie_samesite == "None" and not parsed.cookie_secure:
        raise ConfigurationError(
            "jeff.cookie_samesite: None requires jeff.cookie_secure = true "
            "(browsers reject SameSite=None cookies that are not Secure)"
        )
    return parsed


def _cookie_name(key: str, value: object) -> str:
    text = str(value).strip()
    if not _TOKEN_RE.fullmatch(text) or text.lower().startswith(("__host-", "__secure-")):
        raise _fail(key, "expected a cookie name without a __Host-/__Secure- prefix", value)
    return text


def _samesite(key: str, value: object) -> SameSite:
    try:
        return _SAMESITE[str(value).strip().lower()]
    except KeyError:
        raise _fail(key, "expected Strict, Lax or None", value) from None


def _cookie_domain(key: str, value: object) -> str | None:
    text = str(value).strip()
    if not text:
        return None
    if not re.fullmatch(r"\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", text):
        raise _fail(key, "expected a domain name such as example.com", value)
    return text


def _cookie_path(key: str, value: object) -> str:
    text = str(value).strip()
    if not text.startswith("/") or not re.fullmatch(r"[\x21-\x3a\x3c-\x7e]+", text):
        raise _fail(key, "expected a path starting with /", value)
    return text


def _key_prefix(key: str, value: object) -> str:
    text = str(value)
    if "{" in text or "}" in text or any(c.isspace() for c in text):
        raise _fail(key, "must not contain braces or spaces", value)
    return text


def _memcached_key_prefix(key: str, value: object) -> str:
    text = str(value)
    # Memcached keys are at most 250 bytes of printable ASCII without spaces.
    if len(text) > 32 or not re.fullmatch(r"[\x21-\x7e]*", text):
        raise _fail(key, "expected at most 32 printable ASCII characters, no spaces", value)
    return text


def _table_name(key: str, value: object) -> str:
    text = str(value).strip()
    # A plain identifier that every SQL backend accepts unquoted (MySQL: 64 characters).
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", text):
        raise _fail(key, "expected a table name of letters, digits and _", value)
    return text

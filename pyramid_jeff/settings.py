"""``jeff.*`` settings: one table (:data:`SETTINGS`: key, converter, default, meaning),
from which the parsing, the list of known keys, ``includeme``'s docstring and the
README's table of settings (kept equal to it by a test) all come. Parsed, coerced and
checked once; every problem is a :class:`~pyramid.exceptions.ConfigurationError` that
starts with the key.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from pyramid.exceptions import ConfigurationError

from .converters import (
    REDIS_SCHEMES,
    Converter,
    boolean,
    cookie_domain,
    cookie_name,
    cookie_path,
    dotted,
    login_url,
    memcached_key_prefix,
    one_of,
    redis_key_prefix,
    samesite,
    seconds,
    store,
    table_name,
    whole_number,
)
from .cookies import SameSite
from .manager import DEFAULT_MAX_AGE, DEFAULT_MAX_SESSIONS, MAX_SESSIONS_POLICIES
from .privacy import RECORD_IP_MODES
from .session import MAX_LIFETIME

PREFIX = "jeff."
# At the cap a login prunes and sorts the key's sessions in one atomic step (a Lua script
# on Redis that blocks the server meanwhile): bounded so that step stays around a
# millisecond or two (see benchmarks/).
MAX_SESSIONS_LIMIT = 1000


@dataclasses.dataclass(frozen=True)
class Setting:
    key: str
    convert: Converter
    default: Any
    doc: str  # Markdown, as in the README's table
    shown: str = ""  # the default as the README shows it, when not its plain value

    @property
    def field(self) -> str:
        """The :class:`JeffSettings` field: ``jeff.redis.socket_timeout`` ->
        ``redis_socket_timeout``."""
        return self.key[len(PREFIX) :].replace(".", "_")

    def shown_default(self) -> str:
        if self.shown:
            return self.shown
        if self.default is None:
            return "unset"
        if isinstance(self.default, bool):
            return "`true`" if self.default else "`false`"
        return f"`{self.default}`"


# A table, kept compact: one entry a setting (key, converter, default, meaning).
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("jeff.store", store, "memory://",
            "`memory://` (this process only), `redis://host:port/db`, `rediss://...` (TLS), "
            "`unix:///path/redis.sock?db=0`, `memcached://host:port[,host:port...]`, a SQLAlchemy "
            "URL of SQLite, PostgreSQL or MySQL/MariaDB (`sqlite:///path.db`, "
            "`postgresql+psycopg://user@host/db`, `mysql+pymysql://user@host/db`), or the dotted "
            "name of a factory `(settings) -> store` (see [Stores](#stores)). Other redis-py URL "
            "options are passed on, except the timeouts and pool size, which only the "
            "`jeff.redis.*` settings set"),
    Setting("jeff.cookie_name", cookie_name, "jeff",
            "gets the `__Host-` prefix automatically when the cookie is Secure, `Path=/` and has "
            "no Domain (so `__Host-jeff` by default), else `__Secure-` when it is Secure"),
    Setting("jeff.cookie_secure", boolean, True,
            "set `false` only for plain-http development, as `development.ini` does"),
    Setting("jeff.cookie_samesite", samesite, "Lax",
            "`Strict`, `Lax` or `None` (`None` requires Secure)"),
    Setting("jeff.cookie_domain", cookie_domain, None,
            "host-only cookie when unset"),
    Setting("jeff.cookie_path", cookie_path, "/",
            "the cookie's `Path`"),
    Setting("jeff.max_age", whole_number(1, MAX_LIFETIME), DEFAULT_MAX_AGE,
            "absolute lifetime of a session in seconds (1 to 400 days); also the cookie's "
            "`Max-Age`. `remember(..., max_age=...)` chooses it per login",
            shown='`2592000` (30 days)'),
    Setting("jeff.persistent", boolean, True,
            "default of `remember(..., persistent=...)`: `false` gives browser-session cookies "
            "(no `Max-Age`, gone when the browser closes); the server still ends the session at "
            "its max age"),
    Setting("jeff.idle_timeout", whole_number(0, MAX_LIFETIME), 0,
            "seconds without a request after which a session is dead",
            shown='`0` (off)'),
    Setting("jeff.max_sessions", whole_number(1, MAX_SESSIONS_LIMIT), DEFAULT_MAX_SESSIONS,
            "sessions one key may hold (1 to 1000); what a login past it does is "
            "`jeff.max_sessions_policy`"),
    Setting("jeff.max_sessions_policy", one_of(MAX_SESSIONS_POLICIES), "evict",
            "`evict`: a login past `jeff.max_sessions` ends the key's oldest session (its browser "
            "is told `evicted`); `reject`: `remember()` raises `pyramid_jeff.TooManySessions` and "
            "nothing is stored (see [Login policy](#login-policy-when-a-key-is-full))"),
    Setting("jeff.record_ip", one_of(RECORD_IP_MODES), "full",
            "the login's IP address kept with its session: `full`, `truncated` (the network only: "
            "an IPv4 /24, an IPv6 /48) or `none` (see [Privacy](#privacy))"),
    Setting("jeff.record_user_agent", boolean, True,
            "keep the login's `User-Agent` (its first 256 characters) with its session"),
    Setting("jeff.bearer", boolean, False,
            "also accept the credential as `Authorization: Bearer <value>`, for API clients (see "
            "[API clients](#api-clients-bearer-credentials))"),
    Setting("jeff.login_url", login_url, "/",
            "where anonymous requests to a forbidden view are sent, with `next=<path>`; a path or "
            "an `http(s)` URL"),
    Setting("jeff.redirect", dotted, None,
            "dotted name of a view (`(request)` or `(context, request)`) that replaces the "
            "redirect for anonymous requests (jeff's `Redirect` option)"),
    Setting("jeff.groupfinder", dotted, None,
            "dotted `(key, request) -> iterable of principals`, added to `[Everyone, "
            "Authenticated, key]`; returning `None` makes the request anonymous"),
    Setting("jeff.identity_loader", dotted, None,
            "dotted `(session, request) -> object or None`: what `request.identity` returns (e.g. "
            "the user row); `None` makes the request anonymous (a deleted or disabled account). "
            "Default: the `Session`"),
    Setting("jeff.csrf", boolean, False,
            "use `JeffCSRFStoragePolicy`: CSRF tokens kept with the login session (see "
            "[CSRF](#csrf))"),
    Setting("jeff.redis.socket_timeout", seconds, 1.0,
            "seconds (above 0, at most 60) a request may wait on Redis in total: its commands, "
            "connecting and waiting for a free pooled connection share it (see "
            "[Errors](#errors-you-may-meet)); outside a request, the limit of each command and of "
            "the wait for a free connection"),
    Setting("jeff.redis.socket_connect_timeout", seconds, 1.0,
            "seconds (above 0, at most 60) to open a connection; inside a request, no more than "
            "what it has left"),
    Setting("jeff.redis.max_connections", whole_number(1, 10_000), 50,
            "Redis connections per process"),
    Setting("jeff.redis.key_prefix", redis_key_prefix, "jeff:",
            "prefix of every Redis key (no braces or spaces)"),
    Setting("jeff.redis.cluster", boolean, False,
            "connect with `redis.RedisCluster` to the node named by a `redis://` or `rediss://` "
            "`jeff.store`; the cluster must answer at start-up (it maps its slots then)"),
    Setting("jeff.memcached.socket_timeout", seconds, 1.0,
            "seconds (above 0, at most 60) a request may wait on memcached in total (as "
            "`jeff.redis.socket_timeout`); outside a request, the limit of each command"),
    Setting("jeff.memcached.socket_connect_timeout", seconds, 1.0,
            "seconds (above 0, at most 60) to open a connection; inside a request, no more than "
            "what it has left"),
    Setting("jeff.memcached.max_connections", whole_number(1, 10_000), 50,
            "connections per memcached server and process"),
    Setting("jeff.memcached.key_prefix", memcached_key_prefix, "jeff:",
            "prefix of every memcached key (printable ASCII, no spaces, at most 32 characters)"),
    Setting("jeff.sql.table", table_name, "jeff_sessions",
            "the session table (letters, digits, `_`), created when missing"),
    Setting("jeff.sql.timeout", seconds, 1.0,
            "seconds (above 0, at most 60) a request may wait on the database in total: a pooled "
            "connection, connecting, each statement and the row locks it waits for"),
    Setting("jeff.sql.pool_size", whole_number(1, 1000), 10,
            "database connections per process, in the store's own engine (never the "
            "application's)"),
)
# fmt: on
# fmt: on
KNOWN = frozenset(setting.key for setting in SETTINGS)


@dataclasses.dataclass(frozen=True)
class JeffSettings:
    """The parsed settings: one field per row of :data:`SETTINGS`, which gives the
    defaults (``parse_settings({})``)."""

    store: str | Callable[..., Any]
    cookie_name: str
    cookie_secure: bool
    cookie_samesite: SameSite
    cookie_domain: str | None
    cookie_path: str
    max_age: int
    persistent: bool
    idle_timeout: int
    max_sessions: int
    max_sessions_policy: str
    record_ip: str
    record_user_agent: bool
    bearer: bool
    login_url: str
    redirect: Callable[..., Any] | None
    groupfinder: Callable[..., Any] | None
    identity_loader: Callable[..., Any] | None
    csrf: bool
    redis_socket_timeout: float
    redis_socket_connect_timeout: float
    redis_max_connections: int
    redis_key_prefix: str
    redis_cluster: bool
    memcached_socket_timeout: float
    memcached_socket_connect_timeout: float
    memcached_max_connections: int
    memcached_key_prefix: str
    sql_table: str
    sql_timeout: float
    sql_pool_size: int

    @property
    def store_kind(self) -> str:
        """``memory``, ``redis``, ``memcached``, ``sql`` or ``factory``."""
        return store_kind(self.store)


def store_kind(store: str | Callable[..., Any]) -> str:
    """Which store a checked ``jeff.store`` value names: ``memory``, ``redis``,
    ``memcached``, ``sql`` or ``factory``."""
    if not isinstance(store, str):
        return "factory"
    if store.startswith("memory://"):
        return "memory"
    if store.startswith(REDIS_SCHEMES):
        return "redis"
    if store.startswith("memcached://"):
        return "memcached"
    return "sql"


def parse_settings(
    settings: Mapping[str, Any], maybe_dotted: Callable[[Any], Any] = lambda v: v
) -> JeffSettings:
    """Build :class:`JeffSettings` from an application's settings (``jeff.*`` keys)."""
    unknown = sorted(k for k in settings if k.startswith(PREFIX) and k not in KNOWN)
    if unknown:
        raise ConfigurationError(
            f"{unknown[0]}: unknown pyramid_jeff setting (known: {', '.join(sorted(KNOWN))})"
        )
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = settings.get(setting.key)
        # An empty value (`jeff.redirect =` in an ini file) means "not set".
        if value is None or value == "":
            values[setting.field] = setting.default
        else:
            values[setting.field] = setting.convert(setting.key, value, maybe_dotted)
    parsed = JeffSettings(**values)
    _check_together(parsed)
    return parsed


def _check_together(parsed: JeffSettings) -> None:
    """What no one setting can tell by itself."""
    if parsed.redis_cluster and not str(parsed.store).startswith(("redis://", "rediss://")):
        raise ConfigurationError(
            "jeff.redis.cluster: a cluster is reached by a redis:// or rediss:// jeff.store URL"
        )
    if parsed.cookie_samesite == "None" and not parsed.cookie_secure:
        raise ConfigurationError(
            "jeff.cookie_samesite: None requires jeff.cookie_secure = true "
            "(browsers reject SameSite=None cookies that are not Secure)"
        )


def markdown_table() -> str:
    """The README's table of settings."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.key}` | {s.shown_default()} | {s.doc} |" for s in SETTINGS]
    return "\n".join(rows)


def docstring() -> str:
    """Every setting, for ``includeme``'s docstring (reStructuredText)."""
    entries = []
    for setting in SETTINGS:
        doc = re.sub(r"\[([^]]+)\]\(#[^)]+\)", r"\1", setting.doc)  # links: their text
        doc = re.sub(r"`([^`]+)`", r"``\1``", doc)
        default = re.sub(r"`([^`]+)`", r"``\1``", setting.shown_default())
        meaning = textwrap.fill(
            f"{doc[0].upper()}{doc[1:]}.",
            80,
            initial_indent="    ",
            subsequent_indent="    ",
            break_on_hyphens=False,
        )
        entries.append(f"``{setting.key}`` ({default})\n{meaning}")
    return "\n".join(entries)

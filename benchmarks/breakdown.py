"""Where a pyramid_jeff request's time goes, in microseconds: its pieces timed one by one.

Sampling profilers see little of a 30 µs request on this VM (and distort the Redis wait), so
this module times the pieces directly, interleaved like everything else: the Pyramid work
jeff's configuration causes, jeff's own steps, and the Redis command paths (jeff's own, a
pooled connection's ``send_command``/``read_response``, against redis-py's ``execute_command``
and a raw socket). It reaches into pyramid_jeff's internals (module-level names, the policy's
``manager``/``cookie``, ``RedisStore._command``/``_run``); a piece whose internals moved is
reported as skipped rather than failing the run.

    python benchmarks/breakdown.py        # or as the "breakdown" section of run.py
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.dirname(HERE))

import inprocess  # noqa: E402
from apps import VARIANTS, RawRedisGet, Root, redis_client  # noqa: E402
from pyramid.interfaces import IRequestExtensions, ISecurityPolicy  # noqa: E402
from pyramid.request import Request, apply_request_extensions  # noqa: E402
from pyramid.response import Response  # noqa: E402
from timing import Case, run_interleaved  # noqa: E402


def _pieces(apps: dict[str, Any], redis_url: str) -> tuple[list[Case], list[str]]:
    """(cases, notes): each case is one piece of work, called with fixed inputs."""
    cases: list[Case] = []
    notes: list[str] = []

    def add(name: str, label: str, make: Callable[[], Callable[[], Any]]) -> None:
        try:
            call = make()
            call()
        except Exception as exc:  # an internal that moved: say so, keep going
            notes.append(f"{label}: skipped ({type(exc).__name__}: {exc})")
            return
        cases.append(Case(name, label, call))

    mem_app, redis_app = apps["jeff-memory"], apps["jeff-redis"]
    policy = mem_app.registry.queryUtility(ISecurityPolicy)
    rpolicy = redis_app.registry.queryUtility(ISecurityPolicy)
    cookie_header = inprocess.login(mem_app, "pieces@bench.example")
    rcookie_header = inprocess.login(redis_app, "pieces@bench.example")
    env = inprocess.environ("/private", cookie=cookie_header)
    renv = inprocess.environ("/private", cookie=rcookie_header)

    # -- Pyramid work that jeff's configuration causes -------------------------------------
    ext = mem_app.registry.queryUtility(IRequestExtensions)

    def make_request() -> Callable[[], Any]:
        return lambda: Request(env.copy())

    def make_extended() -> Callable[[], Any]:
        def call() -> Any:
            request = Request(env.copy())
            apply_request_extensions(request, ext)
            return request

        return call

    add("req", "Request(environ) alone (reference for the next line)", make_request)
    add(
        "req-ext",
        "Request(environ) + apply_request_extensions (jeff_session, jeff: a class per request)",
        make_extended,
    )

    def make_permits() -> Callable[[], Any]:
        from pyramid.authorization import ACLHelper, Authenticated, Everyone

        acl, root = ACLHelper(), Root(Request(env.copy()))
        principals = [Everyone, Authenticated, "pieces@bench.example"]
        return lambda: acl.permits(root, principals, "view")

    add("acl", "ACLHelper.permits(root, principals, 'view')", make_permits)

    # -- jeff's own steps ---------------------------------------------------------------------
    def make_state() -> Callable[[], Any]:
        from pyramid_jeff.request import request_state

        cookie = policy.cookie
        return lambda: request_state(Request(env.copy()), cookie)

    add("state", "request_state(): Request + find_cookie + Credential.decode", make_state)

    def make_decode() -> Callable[[], Any]:
        from pyramid_jeff.cookies import find_cookie
        from pyramid_jeff.credentials import Credential

        header, name = env["HTTP_COOKIE"], policy.cookie.name
        return lambda: Credential.decode(find_cookie(header, name))  # type: ignore[arg-type]

    add("decode", "find_cookie + Credential.decode (regex)", make_decode)

    def credential_of(header: str) -> Any:
        from pyramid_jeff.cookies import find_cookie
        from pyramid_jeff.credentials import Credential

        return Credential.decode(find_cookie(header, policy.cookie.name))  # type: ignore[arg-type]

    def make_digest() -> Callable[[], Any]:
        cred = credential_of(env["HTTP_COOKIE"])
        return cred.token_digest  # type: ignore[no-any-return]

    add("digest", "Credential.token_digest (SHA-256)", make_digest)

    def make_mem_get() -> Callable[[], Any]:
        cred, store = credential_of(env["HTTP_COOKIE"]), policy.manager.store
        return lambda: store.get(cred.key_digest, cred.session_id)

    add("mem-get", "MemoryStore.get (lock + 2 dict lookups)", make_mem_get)

    def make_mem_verify() -> Callable[[], Any]:
        cred, manager = credential_of(env["HTTP_COOKIE"]), policy.manager
        return lambda: manager.verify(cred)

    add("mem-verify", "SessionManager.verify on memory (get + digest + compare)", make_mem_verify)

    def make_resolve() -> Callable[[], Any]:
        def call() -> Any:
            request = Request(env.copy())
            request.registry = mem_app.registry
            return policy.permits(request, Root(request), "view")

        return call

    add("permits", "Request + JeffSecurityPolicy.permits (whole verify, memory)", make_resolve)

    def make_keep_private() -> Callable[[], Any]:
        from pyramid_jeff.tween import _keep_private

        def call() -> Any:
            response = Response(b"hello, member\n", content_type="text/plain")
            _keep_private(response)
            return response

        return call

    add("resp", "Response(...) alone (reference for the next line)",
        lambda: lambda: Response(b"hello, member\n", content_type="text/plain"))  # fmt: skip
    add("keep-private", "Response(...) + tween._keep_private (one pass: Vary, Cache-Control)",
        make_keep_private)  # fmt: skip

    # -- Redis paths ----------------------------------------------------------------------------
    rcred = credential_of(renv["HTTP_COOKIE"])
    rstore = rpolicy.manager.store
    hash_key = rstore.hash_key(rcred.key_digest)

    def make_rstore_command() -> Callable[[], Any]:
        key, field = hash_key, rcred.session_id
        return lambda: rstore._command("HGET", key, field)

    add("r-command", "RedisStore._command HGET: pool checkout + send + read + release (jeff)",
        make_rstore_command)  # fmt: skip

    def make_rstore_get() -> Callable[[], Any]:
        return lambda: rstore.get(rcred.key_digest, rcred.session_id)

    add("r-get", "RedisStore.get (the line above + unpack_record)", make_rstore_get)

    def make_r_verify() -> Callable[[], Any]:
        manager = rpolicy.manager
        return lambda: manager.verify(rcred)

    add("r-verify", "SessionManager.verify on Redis", make_r_verify)

    def make_checkout() -> Callable[[], Any]:
        pool = rstore._pool

        def call() -> Any:
            connection = pool.get_connection()
            pool.release(connection)

        return call

    add("checkout", "the store's pool: get_connection + release alone (no command)",
        make_checkout)  # fmt: skip

    def make_conn_hget() -> Callable[[], Any]:
        # one connection held throughout: what the per-thread-connection what-if does
        conn = redis_client(redis_url).connection_pool.get_connection()
        key, field = hash_key.encode(), rcred.session_id.encode()

        def call() -> Any:
            conn.send_command("HGET", key, field)
            return conn.read_response()

        return call

    add("hget-conn", "redis-py send_command + read_response on a held connection (no checkout)",
        make_conn_hget)  # fmt: skip

    def make_hget(parser: str) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            client = redis_client(redis_url, parser)
            return lambda: client.hget(hash_key, rcred.session_id)

        return make

    add("hget-default", "redis-py hget via execute_command (the floor's path; hiredis)",
        make_hget("default"))  # fmt: skip
    add("hget-py", "redis-py hget via execute_command, pure-Python parser", make_hget("python"))

    def make_raw_hget() -> Callable[[], Any]:
        from urllib.parse import urlsplit

        parts = urlsplit(redis_url)
        raw = RawRedisGet(parts.hostname or "127.0.0.1", parts.port or 6379)
        sock_reader = raw._conn()
        key, field = hash_key.encode(), rcred.session_id.encode()
        packet = b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (
            len(key), key, len(field), field)  # fmt: skip

        def call() -> Any:
            sock_reader[0].sendall(packet)
            return raw._bulk(sock_reader[1])

        return call

    add("hget-raw", "raw socket HGET (one sendall + buffered read)", make_raw_hget)

    def make_unpack() -> Callable[[], Any]:
        from pyramid_jeff.session import unpack_record

        value = redis_client(redis_url).hget(hash_key, rcred.session_id)
        return lambda: unpack_record(rcred.session_id, value)

    add("unpack", "unpack_record (msgpack + Session)", make_unpack)

    # -- login pieces -------------------------------------------------------------------------
    def make_normalize(key: str) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            from pyramid_jeff.credentials import normalize_key

            return lambda: normalize_key(key)

        return make

    add("normalize", "normalize_key (23-char ASCII email: the fast path)",
        make_normalize("user12345@bench.example"))  # fmt: skip
    add("normalize-nfc", "normalize_key (23-char non-ASCII email: the full checks)",
        make_normalize("usér12345@bénch.example"))  # fmt: skip

    def make_mint() -> Callable[[], Any]:
        from pyramid_jeff.credentials import Credential

        return lambda: Credential.mint("user12345@bench.example")

    add("mint", "Credential.mint (key digest + id + token from secrets)", make_mint)

    def make_create(which: str) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            manager = (policy if which == "memory" else rpolicy).manager
            counter = iter(range(10**9))
            ua = inprocess.BROWSER_HEADERS["User-Agent"]
            return lambda: manager.create(
                f"c{next(counter)}@bench.example", ip="203.0.113.7", user_agent=ua
            )

        return make

    add("create-mem", "SessionManager.create on memory (whole login, no Pyramid)",
        make_create("memory"))  # fmt: skip
    add("create-redis", "SessionManager.create on Redis (EVALSHA of the create script)",
        make_create("redis"))  # fmt: skip

    def make_evalsha() -> Callable[[], Any]:
        from pyramid_jeff.redis_store import _Script

        script = _Script("return 1")
        return lambda: rstore._run(script, "k")

    add("evalsha", "RedisStore._run of `return 1` (EVALSHA, jeff's path): a script's fixed cost",
        make_evalsha)  # fmt: skip

    def make_jeff_set() -> Callable[[], Any]:
        counter = iter(range(10**9))
        value = b"x" * 250
        return lambda: rstore._command(
            "SET", f"conn-set:{next(counter)}", value, "PX", 2_592_000_000
        )

    add("jeff-set", "SET with PX on jeff's path (RedisStore._command): reference for the above",
        make_jeff_set)  # fmt: skip

    def make_set() -> Callable[[], Any]:
        client = redis_client(redis_url)
        counter = iter(range(10**9))
        value = b"x" * 250
        return lambda: client.set(f"floor-set:{next(counter)}", value, px=2_592_000_000)

    add("set", "redis-py SET with PX via execute_command (the login floor's one command)",
        make_set)  # fmt: skip

    def make_hset_pexpire() -> Callable[[], Any]:
        client = redis_client(redis_url)
        counter = iter(range(10**9))
        value = b"x" * 250

        def call() -> Any:
            n = next(counter)
            pipe = client.pipeline(transaction=False)
            pipe.hset(f"jeff-alt:{{{n}}}", "sid", value)
            pipe.pexpire(f"jeff-alt:{{{n}}}", 2_592_000_000, gt=True)
            return pipe.execute()

        return call

    add("hset-pexpire", "redis-py pipeline HSET + PEXPIRE GT (no script; one round trip)",
        make_hset_pexpire)  # fmt: skip
    return cases, notes


def run(redis_url: str, rounds: int = 30, batch: int = 100) -> str:
    apps = {n: VARIANTS[n].build(redis_url) for n in ("jeff-memory", "jeff-redis")}
    cases, notes = _pieces(apps, redis_url)
    run_interleaved(cases, rounds=rounds, batch=batch, warmup=200)
    rows = [f"| {c.label} | {c.median_us():.2f} |" for c in cases]
    text = "| piece | median µs |\n|---|---|\n" + "\n".join(rows)
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return text


def main() -> int:
    from redis_server import PrivateRedis

    with PrivateRedis() as server:
        print(run(server.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())

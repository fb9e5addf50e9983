"""Where a pyramid_jeff request's time goes: its pieces timed one by one, in µs.

Sampling profilers see little of a 30 µs request (and distort the Redis wait), so this
times the pieces directly, interleaved like everything else, through public names only:
the Pyramid work jeff's configuration causes, jeff's steps (``Credential``, the store, the
manager, the policy), and Redis command paths (a pooled connection's ``send_command`` /
``read_response`` as ``RedisStore`` runs them, redis-py's ``execute_command``, a raw socket).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from itertools import count
from typing import Any

from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.interfaces import IRequestExtensions
from pyramid.request import Request, apply_request_extensions
from pyramid.response import Response

from pyramid_jeff import Credential
from pyramid_jeff.testing import jeff_policy

from .. import variants
from ..measure import USER_AGENT, Case, environ, login, run_interleaved
from ..report import Report, table
from ..variants import PooledKV, RawRESP, Root, redis_client
from . import main

Pieces = list[tuple[str, Callable[[], Any]]]
KEY = "pieces@bench.example"


def pyramid_pieces(app: Any, env: dict[str, Any]) -> Pieces:
    ext = app.registry.queryUtility(IRequestExtensions)
    principals, root = [Everyone, Authenticated, KEY], Root(Request(env.copy()))
    return [
        ("Request(environ) alone (reference for the next line)", lambda: Request(env.copy())),
        ("Request(environ) + apply_request_extensions (jeff_session, jeff: a class per request)",
         lambda: apply_request_extensions(Request(env.copy()), ext)),
        ("ACLHelper.permits(root, principals, 'view')",
         lambda: ACLHelper().permits(root, principals, "view")),
        ("Response(...) alone", lambda: Response(b"hello, member\n", content_type="text/plain")),
    ]  # fmt: skip


def jeff_pieces(app: Any, env: dict[str, Any]) -> Pieces:
    policy = jeff_policy(app.registry)
    name, manager = policy.cookie.name, policy.manager
    value = Request(env.copy()).cookies[name]
    cred = Credential.decode(value)
    assert cred is not None

    def permits() -> Any:
        request = Request(env.copy())
        request.registry = app.registry
        return policy.permits(request, Root(request), "view")

    return [
        ("Request + request.cookies + Credential.decode",
         lambda: Credential.decode(Request(env.copy()).cookies[name])),
        ("Credential.decode (cookie value: the format check)", lambda: Credential.decode(value)),
        ("Credential.token_digest (SHA-256)", cred.token_digest),
        ("MemoryStore.get", lambda: manager.store.get(cred.key_digest, cred.session_id)),
        ("SessionManager.verify on memory (get + digest + compare)", lambda: manager.verify(cred)),
        ("Request + JeffSecurityPolicy.permits (whole verify, memory)", permits),
    ]  # fmt: skip


def redis_pieces(app: Any, url: str) -> Pieces:
    manager = jeff_policy(app.registry).manager
    cred = Credential.decode(login(app, KEY).split("=", 1)[1].split(";")[0])
    assert cred is not None
    field, key = cred.session_id, manager.store.hash_key(cred.key_digest)
    pooled, raw, client = PooledKV(url), RawRESP(url), redis_client(url)
    python, held = redis_client(url, "python"), client.connection_pool.get_connection()

    def checkout() -> None:
        pooled.pool.release(pooled.pool.get_connection())

    def held_hget() -> Any:
        held.send_command("HGET", key, field)
        return held.read_response()

    return [
        ("RedisStore.get (HGET on a pooled connection + the record decoded)",
         lambda: manager.store.get(cred.key_digest, cred.session_id)),
        ("SessionManager.verify on Redis", lambda: manager.verify(cred)),
        ("HGET on a pooled connection: checkout + send + read + release (jeff's path)",
         lambda: pooled.command("HGET", key, field)),
        ("a BlockingConnectionPool's get_connection + release alone (no command)", checkout),
        ("redis-py send_command + read_response on a held connection (no checkout)", held_hget),
        ("redis-py hget via execute_command (the floor's path)", lambda: client.hget(key, field)),
        ("redis-py hget via execute_command, pure-Python parser", lambda: python.hget(key, field)),
        ("raw socket HGET (one sendall + buffered read)", lambda: raw.command("HGET", key, field)),
    ]  # fmt: skip


def login_pieces(memory: Any, redis_app: Any, url: str) -> Pieces:
    numbers, pooled, client = count(), PooledKV(url), redis_client(url)
    value, month = b"x" * 250, 2_592_000_000

    def create(app: Any, user: str) -> Callable[[], Any]:
        manager = jeff_policy(app.registry).manager
        return lambda: manager.create(
            user % next(numbers), ip="203.0.113.7", user_agent=USER_AGENT
        )

    def pipeline() -> Any:
        pipe, n = client.pipeline(transaction=False), next(numbers)
        pipe.hset(f"alt:{{{n}}}", "sid", value)
        pipe.pexpire(f"alt:{{{n}}}", month, gt=True)
        return pipe.execute()

    sha = client.script_load("return 1")
    return [
        ("Credential.mint (key digest + id + token from secrets)", lambda: Credential.mint(KEY)),
        ("SessionManager.create on memory (whole login, no Pyramid; ASCII email)",
         create(memory, "user%d@bench.example")),
        ("SessionManager.create on memory, non-ASCII email (the key's full checks)",
         create(memory, "usér%d@bénch.example")),
        ("SessionManager.create on Redis (EVALSHA of the create script)",
         create(redis_app, "c%d@bench.example")),
        ("EVALSHA of `return 1` on a pooled connection: a script's fixed cost",
         lambda: pooled.command("EVALSHA", sha, 1, "k")),
        ("SET with PX on a pooled connection: reference for the above",
         lambda: pooled.command("SET", f"conn-set:{next(numbers)}", value, "PX", month)),
        ("redis-py SET with PX via execute_command (the login floor's one command)",
         lambda: client.set(f"floor-set:{next(numbers)}", value, px=month)),
        ("redis-py pipeline HSET + PEXPIRE GT (no script; one round trip)", pipeline),
    ]  # fmt: skip


def run(report: Report, args: argparse.Namespace, url: str) -> None:
    memory, redis_app = variants.build("jeff-memory", url), variants.build("jeff-redis", url)
    env = environ("/private", cookie=login(memory, KEY))
    pieces = pyramid_pieces(memory, env) + jeff_pieces(memory, env)
    pieces += redis_pieces(redis_app, url) + login_pieces(memory, redis_app, url)
    cases = [Case(label, label, call) for label, call in pieces]
    rounds, batch = (8, 50) if args.quick else (30, 100)
    run_interleaved(cases, rounds=rounds, batch=batch, warmup=200)
    rows = [[case.label, f"{case.median_us():.2f}"] for case in cases]
    intro = f"{args.made_by}\n\nA Redis line includes one loopback round trip."
    report.section(
        "Where jeff's time goes: its pieces timed one by one",
        intro,
        table(["piece", "median µs"], rows),
    )


if __name__ == "__main__":
    main("benchmarks.investigations.breakdown", __doc__, run)

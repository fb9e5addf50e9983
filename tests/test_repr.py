"""No secret in any repr: tracebacks that capture locals (Sentry, debug toolbars) print them."""

from __future__ import annotations

import traceback

from pyramid_jeff import Credential, MemoryStore, SessionManager


def test_a_traceback_with_locals_shows_no_token_nor_digest() -> None:
    manager = SessionManager(MemoryStore())
    session, credential = manager.create("ann@example.com")

    def fails(credential: Credential) -> None:
        verified = manager.verify(credential)
        raise RuntimeError(f"boom after {verified}")

    try:
        fails(credential)
    except RuntimeError as exc:
        text = "".join(
            traceback.TracebackException.from_exception(exc, capture_locals=True).format()
        )
    assert credential.session_id in text  # the locals really were captured
    for secret in (credential.token, credential.encode(), session.token_digest.hex()):
        assert secret not in text
    assert credential.token not in repr(credential) and credential.token not in str(credential)
    assert repr(session.token_digest) not in repr(session)

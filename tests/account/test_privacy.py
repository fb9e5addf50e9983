"""Privacy settings: what is kept of the IP address and the user agent."""

from __future__ import annotations

import pytest
from pyramid.exceptions import ConfigurationError

from .. import account_app
from .client import (
    ALICE,
    build_app,
)

# --- Privacy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "address", "kept"),
    [
        ("full", "192.0.2.77", "192.0.2.77"),
        ("truncated", "192.0.2.77", "192.0.2.0"),
        ("truncated", "2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("truncated", "::ffff:192.0.2.77", "192.0.2.0"),
        ("truncated", "not-an-address", None),
        ("none", "192.0.2.77", None),
    ],
)
def test_record_ip(mode: str, address: str, kept: str | None) -> None:
    app = build_app("memory://", record_ip=mode)
    app.log_in(extra_environ={"REMOTE_ADDR": address})
    (session,) = app.manager.sessions(ALICE)
    assert session.ip == kept


@pytest.mark.parametrize(("record", "kept"), [(True, "Firefox/1"), (False, None)])
def test_record_user_agent(record: bool, kept: str | None) -> None:
    app = build_app("memory://", record_user_agent=str(record).lower())
    app.log_in(headers={"User-Agent": "Firefox/1"})
    (session,) = app.manager.sessions(ALICE)
    assert session.user_agent == kept


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("jeff.max_sessions_policy", "oldest"),
        ("jeff.record_ip", "partial"),
        ("jeff.record_user_agent", "maybe"),
        ("jeff.bearer", "yes please"),
    ],
)
def test_bad_account_settings_fail_at_start_up(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        account_app.make_app({key: value})

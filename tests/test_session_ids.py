"""Bad session ids get the same answer from the manager on every store, never an outage."""

from __future__ import annotations

from typing import Any

import pytest

from pyramid_jeff import MemoryStore, RedisStore, SessionManager
from pyramid_jeff.testing import CountingStore


@pytest.fixture
def manager(store_url: str) -> SessionManager:
    store = MemoryStore() if store_url == "memory://" else RedisStore.from_url(store_url)
    return SessionManager(CountingStore(store))


def calls(manager: SessionManager) -> int:
    store = manager.store
    assert isinstance(store, CountingStore)
    return sum(store.calls.values())


@pytest.mark.parametrize(
    "bad", ["", "short", "x" * 23, "\ud800" * 22, "a/b+c=d" * 3 + "e", "é" * 22]
)
def test_an_id_no_session_could_have_is_simply_not_there(
    manager: SessionManager, bad: str
) -> None:
    manager.create("ann")
    before = calls(manager)
    assert manager.revoke("ann", bad) is False
    assert calls(manager) == before  # not even asked
    assert manager.revoke_all("ann", keep=bad) == 1  # keeps nothing it could not have
    assert manager.sessions("ann") == []


@pytest.mark.parametrize("bad", [None, 42, b"x" * 22, ["id"]])
def test_an_id_that_is_not_a_str_is_a_type_error(manager: SessionManager, bad: Any) -> None:
    manager.create("ann")
    with pytest.raises(TypeError, match="session id"):
        manager.revoke("ann", bad)
    if bad is not None:  # keep=None means "keep nothing"
        with pytest.raises(TypeError, match="session id"):
            manager.revoke_all("ann", keep=bad)
    assert len(manager.sessions("ann")) == 1

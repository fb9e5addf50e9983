"""The work a request leaves for after the tween (ending a replaced session) runs within that
request's one store budget."""

from __future__ import annotations

from typing import Any

import webtest

from pyramid_jeff.testing import jeff_policy

from .app import make_wsgi_app
from .conftest import HTTPS


class BudgetRecordingStore:
    """A memory store that says it waits on a network, and records, per call, the
    request budget the call ran under."""

    request_budget = 1.0

    def __init__(self) -> None:
        from pyramid_jeff import MemoryStore, deadline

        self.store = MemoryStore()
        self.deadline = deadline
        self.budgets: list[tuple[str, object]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.budgets.append((name, self.deadline.current()))
            return method(*args, **kwargs)

        return recorded


def budget_recording_store(settings: dict[str, Any]) -> BudgetRecordingStore:
    return BudgetRecordingStore()


def test_ending_a_replaced_session_spends_the_same_request_budget() -> None:
    # A login that replaces another key's session ends the old one once the response is
    # settled, after the tween: still within the request's one budget, not a new one.
    wsgi = make_wsgi_app(
        {
            "jeff.store": "tests.test_replaced_session_budget.budget_recording_store",
            "jeff.login_url": "/login",
        }
    )
    app = webtest.TestApp(wsgi, extra_environ=dict(HTTPS))
    store = jeff_policy(wsgi.registry).manager.store
    app.post("/login", {"key": "carol@example.com"}, status=303)
    store.budgets.clear()
    app.post("/login", {"key": "bob@example.com"}, status=303)
    calls = [name for name, _ in store.budgets]
    assert calls == ["create", "revoke"], calls
    budgets = {id(budget) for _, budget in store.budgets}
    assert None not in {budget for _, budget in store.budgets}
    assert len(budgets) == 1  # one budget for the whole request

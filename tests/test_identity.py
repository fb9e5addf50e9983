"""``jeff.identity_loader`` and ``jeff.groupfinder``: the identity and principals of a request."""

from __future__ import annotations

from pyramid_jeff import Session

from .conftest import AppFactory
from .helpers import fresh_client, memory_only

# The identity of a request does not depend on the store: on the memory store only.
pytestmark = memory_only


def test_identity_loader_and_groupfinder(make_app: AppFactory) -> None:
    app = make_app(
        identity_loader="tests.test_identity.load_user",
        groupfinder="tests.app.groupfinder",
    )
    app.login("admin@example.com")
    whoami = app.get("/whoami").json
    assert whoami["userid"] == "admin@example.com"
    assert "role:admin" in whoami["principals"]
    app.get("/admin", status=200)

    deleted = fresh_client(app)
    deleted.login("deleted@example.com")
    assert deleted.get("/whoami").json["userid"] is None
    deleted.get("/protected", status=303)

    disabled = fresh_client(app)
    disabled.login("disabled@example.com")  # the groupfinder returns None
    assert disabled.get("/whoami").json["principals"] == ["system.Everyone"]
    disabled.get("/protected", status=303)


USERS = {"admin@example.com": {"name": "Ada"}, "disabled@example.com": {"name": "Dis"}}


def load_user(session: Session, request: object) -> object:
    return USERS.get(session.key)


def test_identity_is_computed_once_per_request(make_app: AppFactory) -> None:
    calls: list[str] = []

    def counting_loader(session: Session, request: object) -> object:
        calls.append(session.key)
        return session

    app = make_app(identity_loader=counting_loader)
    app.login("bob@example.com")
    calls.clear()
    app.get("/whoami")  # reads authenticated_userid, identity and principals
    assert calls == ["bob@example.com"]

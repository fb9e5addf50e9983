"""Probe views for ``jeff_checks.py`` (copied beside it into the adopted wiki2 app's
``tests/``): logins that commit, raise, doom their transaction or fail transiently under
pyramid_retry, and what each attempt saw."""

import sqlalchemy as sa
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import forget, remember
from pyramid_retry import mark_error_retryable
from tutorial import models


class Transient(Exception):
    """What a deadlock or a serialization failure looks like to pyramid_retry."""


mark_error_retryable(Transient)

# One user per test, so that session counts are per test.
USERS = ("ann", "abe", "bob", "carl", "dora", "dan", "eve", "erin", "fred", "fiona", "gus", "hal")

# What the flaky views saw, one entry per attempt.
ATTEMPTS = []


def find_user(request):
    name = request.params["login"]
    query = sa.select(models.User).where(models.User.name == name)
    return request.dbsession.scalars(query).one()


def add_page(request, name):
    """A database write that pyramid_tm commits, or rolls back with the request."""
    user = request.identity or find_user(request)
    request.dbsession.add(models.Page(name=name, data="x", creator=user))
    request.dbsession.flush()


def whoami(request):
    user = request.identity
    return {
        "userid": request.authenticated_userid,
        "name": None if user is None else user.name,
        "tx_user": request.tm.get().user,  # what tm.annotate_user wrote
    }


def login_then_commit(request):
    headers = remember(request, find_user(request).id)
    add_page(request, request.params["page"])
    return HTTPSeeOther("/_jeff/whoami", headers=headers)


def login_then_raise(request):
    remember(request, find_user(request).id)
    add_page(request, request.params["page"])
    raise RuntimeError("boom after remember()")


def login_then_raise_redirect(request):
    headers = remember(request, find_user(request).id)
    add_page(request, request.params["page"])
    raise HTTPSeeOther("/_jeff/whoami", headers=headers)


def login_then_doom(request):
    headers = remember(request, find_user(request).id)
    add_page(request, request.params["page"])
    request.tm.doom()  # e.g. a commit veto: pyramid_tm aborts, the response stands
    return HTTPSeeOther("/_jeff/whoami", headers=headers)


def flaky_login(request):
    attempt = request.environ["retry.attempt"]
    ATTEMPTS.append((attempt, request.authenticated_userid))
    headers = remember(request, find_user(request).id)
    if attempt < int(request.params["failures"]):
        raise Transient
    return HTTPSeeOther("/_jeff/whoami", headers=headers)


def flaky_whoami(request):
    attempt = request.environ["retry.attempt"]
    ATTEMPTS.append((attempt, request.authenticated_userid))
    if attempt == 0:
        raise Transient
    return whoami(request)


def flaky_logout(request):
    attempt = request.environ["retry.attempt"]
    ATTEMPTS.append((attempt, request.authenticated_userid))
    headers = forget(request)
    if attempt == 0:
        raise Transient
    return HTTPSeeOther("/_jeff/whoami", headers=headers)


PROBES = {
    "whoami": (whoami, "GET"),
    "login_then_commit": (login_then_commit, "POST"),
    "login_then_raise": (login_then_raise, "POST"),
    "login_then_raise_redirect": (login_then_raise_redirect, "POST"),
    "login_then_doom": (login_then_doom, "POST"),
    "flaky_login": (flaky_login, "POST"),
    "flaky_whoami": (flaky_whoami, "GET"),
    "flaky_logout": (flaky_logout, "POST"),
}

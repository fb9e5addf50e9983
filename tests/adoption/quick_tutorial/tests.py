"""Tests for Pyramid's quick tutorial "authorization" step, in the tutorial's own style.

The step ships without tests. ``tests/test_adoption.py`` copies this file to
``tutorial/tests.py`` in a copy of the step and runs it twice: on the app as the
tutorial wrote it (AuthTkt cookies) and on the app adopted to pyramid_jeff. The same
tests pass on both. Settings come from ``testing.ini`` next to ``tutorial/``.
"""

import os
import unittest

from pyramid import testing
from pyramid.paster import get_appsettings

HERE = os.path.dirname(os.path.abspath(__file__))


def app_settings():
    return get_appsettings(os.path.join(HERE, "..", "testing.ini"))


class TutorialViewTests(unittest.TestCase):
    def setUp(self):
        self.config = testing.setUp()
        self.config.add_route("home", "/")
        self.config.add_route("login", "/login")

    def tearDown(self):
        testing.tearDown()

    def test_home(self):
        from .views import TutorialViews

        request = testing.DummyRequest()
        inst = TutorialViews(request)
        response = inst.home()
        self.assertEqual("Home View", response["name"])
        self.assertIsNone(inst.logged_in)

    def test_hello(self):
        from .views import TutorialViews

        request = testing.DummyRequest()
        inst = TutorialViews(request)
        response = inst.hello()
        self.assertEqual("Hello View", response["name"])

    def test_logged_in(self):
        from .views import TutorialViews

        self.config.testing_securitypolicy(userid="editor")
        request = testing.DummyRequest()
        inst = TutorialViews(request)
        self.assertEqual("editor", inst.logged_in)

    def test_login_form(self):
        from .views import TutorialViews

        request = testing.DummyRequest()
        inst = TutorialViews(request)
        response = inst.login()
        self.assertEqual("Login", response["name"])
        self.assertEqual("", response["message"])

    def test_login_wrong_password(self):
        from .views import TutorialViews

        params = {"form.submitted": "Log In", "login": "editor", "password": "wrong"}
        request = testing.DummyRequest(params=params)
        inst = TutorialViews(request)
        response = inst.login()
        self.assertEqual("Failed login", response["message"])

    def test_password_helpers(self):
        from .security import check_password, hash_password

        hashed = hash_password("secret")
        self.assertTrue(check_password("secret", hashed))
        self.assertFalse(check_password("wrong", hashed))


class TutorialFunctionalTests(unittest.TestCase):
    def setUp(self):
        from tutorial import main

        app = main({}, **app_settings())
        from webtest import TestApp

        self.testapp = TestApp(app)

    def login(self, login, password, status=302):
        params = {"form.submitted": "Log In", "login": login, "password": password}
        return self.testapp.post("/login", params, status=status)

    def test_home(self):
        res = self.testapp.get("/", status=200)
        self.assertIn(b"<h1>Hi Home View", res.body)
        self.assertIn(b"Log In", res.body)

    def test_login_page(self):
        res = self.testapp.get("/login", status=200)
        self.assertIn(b"<h1>Login</h1>", res.body)
        self.assertIn(b'name="login"', res.body)

    def test_wrong_password(self):
        res = self.login("editor", "wrong", status=200)
        self.assertIn(b"Failed login", res.body)
        res = self.testapp.get("/", status=200)
        self.assertIn(b"Log In", res.body)

    def test_unknown_user(self):
        res = self.login("nobody", "editor", status=200)
        self.assertIn(b"Failed login", res.body)

    def test_anonymous_redirected_to_login(self):
        res = self.testapp.get("/howdy", status=302)
        self.assertEqual("http://localhost/login", res.location)
        res = res.follow()
        self.assertIn(b"<h1>Login</h1>", res.body)

    def test_login_then_edit(self):
        res = self.login("editor", "editor")
        self.assertEqual("http://localhost/", res.location)
        res = self.testapp.get("/", status=200)
        self.assertIn(b"Logout", res.body)
        self.assertIn(b"as editor", res.body)
        res = self.testapp.get("/howdy", status=200)
        self.assertIn(b"<h1>Hi Hello View", res.body)

    def test_login_returns_to_came_from(self):
        self.testapp.get("/howdy", status=302)
        res = self.login("editor", "editor")
        self.assertEqual("http://localhost/howdy", res.location)
        res = res.follow(status=200)
        self.assertIn(b"<h1>Hi Hello View", res.body)

    def test_viewer_cannot_edit(self):
        self.login("viewer", "viewer")
        res = self.testapp.get("/howdy", status=302)
        res = res.follow(status=200)
        self.assertIn(b"User viewer is not allowed", res.body)

    def test_logout(self):
        self.login("editor", "editor")
        res = self.testapp.get("/logout", status=302)
        self.assertEqual("http://localhost/", res.location)
        res = res.follow(status=200)
        self.assertIn(b"Log In", res.body)
        self.testapp.get("/howdy", status=302)

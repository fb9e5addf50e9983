"""The demo application (demo/pyramid_jeff_demo/), black-box through WebTest.

Each TestApp is one browser with its own cookie jar; several of them on one app are several
devices of the same user.
"""

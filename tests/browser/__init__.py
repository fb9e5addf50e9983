"""The demo in a real browser: a real server process, headless Chromium, clicks like a person.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (its own browser
downloads are not used). Without them the tests are skipped, except in CI (CI=true), where
their absence is a failure.
"""

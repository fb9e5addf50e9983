"""The shapes hostile input is measured against: our cookie's name and format, the site."""

from __future__ import annotations

import re

from hypothesis import strategies as st

COOKIE = "__Host-jeff"  # the app runs over https with the default settings
SITE = "https://example.com"
# The documented cookie format (credentials.py, docs/security.md), written out here
# independently of the implementation's own regular expression.
WELL_FORMED = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")
# Any character a Latin-1 header can carry.
LATIN1 = st.characters(min_codepoint=0, max_codepoint=0xFF)

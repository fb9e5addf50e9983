"""Events, re-authentication, revoke everyone, the login policy, passive views, logout
reasons, privacy settings and bearer credentials, driven over HTTP through an
application written the way Pyramid apps are (tests/account_app.py)."""

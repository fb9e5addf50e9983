"""Hostile input through the whole request path: Cookie headers, return paths, keys.

- Property-based fuzzing (hypothesis) of the ``Cookie`` header: never a 500, never a
  store call for a malformed value, never authenticated. 1,000 examples by default;
  ``make fuzz`` (``JEFF_FUZZ_EXAMPLES=200000``) for a nightly-style run.
- Open redirects: :func:`pyramid_jeff.safe_return_path` and the login view that uses it
  only ever send the browser to a path on this site.
- Session keys: what ``remember()`` refuses, it refuses with a clear error before any
  write, and what it accepts comes back exactly.
"""

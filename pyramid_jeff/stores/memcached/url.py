"""The ``memcached://`` URL of a store: its servers."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORT = 11211


def parse_url(url: str) -> list[tuple[str, int]]:
    """The servers of ``memcached://host[:port][,host[:port]...]``; ``ValueError`` says
    what is wrong."""
    if not isinstance(url, str):
        raise ValueError(f"a memcached URL is a str, not {type(url).__name__}")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "memcached":
        raise ValueError(f"not a memcached:// URL: {url!r}")
    parts = urlsplit("//" + rest)
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in rest:
        raise ValueError(f"a memcached URL has no path, query or fragment: {url!r}")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(f"a memcached URL has no user or password: {url!r}")
    servers: list[tuple[str, int]] = []
    for spec in netloc.split(","):
        host, port = _host_port(spec.strip(), url)
        servers.append((host, port))
    return servers


def _host_port(spec: str, url: str) -> tuple[str, int]:
    if spec.startswith("["):  # [IPv6]:port
        host, bracket, tail = spec[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"malformed IPv6 address {spec!r} in {url!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text_raw = spec.partition(":")
        port_text = port_text_raw if colon else None
    if not host:
        raise ValueError(f"a server without a host in {url!r}")
    if port_text is None:
        return host, DEFAULT_PORT
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text!r} for {host} in {url!r}")
    return host, int(port_text)

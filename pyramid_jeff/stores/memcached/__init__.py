"""A store on memcached (>= 1.4.x text protocol) through pymemcache: every change by CAS.

Per session key, on the one server that rendezvous hashing picks for it, three kinds of
items: a *session item* per session, an *index* listing the key's sessions, and a
*marker* holding the index's generation; on every server, a revoke-everyone *cutoff*
with its random epoch. A session counts only while its item carries the marker's
generation and the cutoff's epoch, so a lost index or cutoff ends sessions rather than
reviving them. Verifying a request is one ``get`` of the item, the marker and the
cutoff.

The modules: :mod:`.records` (the items and their layout), :mod:`.connection` (a
server's budgeted connection pool), :mod:`.cluster` (routing, key names, shared
writes), :mod:`.login`, :mod:`.room` (what a login ends), :mod:`.revocation`,
:mod:`.store` (:class:`MemcachedStore`) and :mod:`.url`.
"""

from .records import EPOCH_BYTES, GEN_BYTES, PREFIX_BYTES
from .store import MemcachedStore
from .url import parse_url

__all__ = ["EPOCH_BYTES", "GEN_BYTES", "PREFIX_BYTES", "MemcachedStore", "parse_url"]

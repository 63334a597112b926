"""What a store raises that callers may act on, whatever the backend."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached (down, restarting, out of connections): nothing was
    read or written, and asking again later may work."""

"""The console's storage: the schema and writer (:mod:`.writer`), read-side queries
(:mod:`.queries`) and exports (:mod:`.export`)."""

from .writer import Store, StoreError, connect, connect_readonly

__all__ = ["Store", "StoreError", "connect", "connect_readonly"]

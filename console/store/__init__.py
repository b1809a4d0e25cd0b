"""The console's storage, on SQLite or PostgreSQL through SQLAlchemy Core.

- :mod:`.database`: opening a database by path or URL, the schema version check, retries;
- :mod:`.schema`: the tables; :mod:`.migrations`: their versions (Alembic);
- :mod:`.writer`: the ingest worker's idempotent, batched write side;
- :mod:`.queries`: the read side shared by the web app and the CLI; :mod:`.export`;
- :mod:`.admin`: ``db upgrade`` and ``db backup``.
"""

from .database import StoreError, describe, open_database
from .writer import Outcome, Store

__all__ = ["Outcome", "Store", "StoreError", "describe", "open_database"]

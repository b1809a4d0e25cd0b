"""The watchlist history becomes part of the versioned schema.

Release 0.1 created these three tables the first time a watchlist was published, outside any
schema version; a release 0.1 database may or may not have them, so each is created only when
missing (an existing one is already of this shape)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "watchlist_versions" not in existing:
        op.create_table(
            "watchlist_versions",
            sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("published_at", sa.Text, nullable=False),
            sa.Column("key_id", sa.Text, nullable=False),
            sa.Column("persons", sa.BigInteger, nullable=False),
            sa.Column("documents", sa.BigInteger, nullable=False),
            sa.Column("delta_chunks", sa.Integer),
            sa.Column("delta_changes", sa.BigInteger),
            sa.Column("delta_bytes", sa.BigInteger),
            sa.Column("snapshot_chunks", sa.Integer),
            sa.Column("snapshot_bytes", sa.BigInteger),
            sa.Column("snapshot_sha256", sa.Text),
        )
    if "watchlist_chunks" not in existing:
        op.create_table(
            "watchlist_chunks",
            sa.Column("kind", sa.Text, primary_key=True),
            sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("chunk_index", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("body", sa.Text, nullable=False),
        )
    if "watchlist_entries" not in existing:
        op.create_table(
            "watchlist_entries",
            sa.Column("kind", sa.Text, primary_key=True),
            sa.Column("entry_id", sa.Text, primary_key=True),
            sa.Column("entry", sa.Text, nullable=False),
        )

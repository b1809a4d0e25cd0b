"""Heartbeat history for the fleet's device pages, and at most one open alert per kiosk and rule.

``heartbeats`` keeps every heartbeat (by its payload id, so a redelivery is stored once) with
the few numbers the device page charts, for a configured number of days (``[alerts]
heartbeat_days``; the alerts evaluator purges older rows by ``received_at``). ``devices`` still
holds the latest heartbeat of each kiosk.

``idx_alerts_one_open`` makes "one open alert per device and rule" a property of the database,
not only of the evaluator: a partial unique index, on SQLite and PostgreSQL alike."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("session", sa.BigInteger),
        sa.Column("seq", sa.BigInteger),
        sa.Column("outbox_depth", sa.BigInteger),
        sa.Column("outbox_oldest_s", sa.Float),
        sa.Column("disk_free_percent", sa.Float),
        sa.Column("watchlist_version", sa.BigInteger),
        sa.Column("watchlist_age_s", sa.Float),
        sa.Column("clock_synced", sa.Integer),
        sa.Column("clock_offset_ms", sa.Float),
    )
    op.create_index("idx_heartbeats_device_id_time", "heartbeats", ["device_id", "time"])
    op.create_index("idx_heartbeats_received_at", "heartbeats", ["received_at"])
    op.create_index(
        "idx_alerts_one_open",
        "alerts",
        ["device_id", "rule"],
        unique=True,
        sqlite_where=sa.text("cleared_at IS NULL"),
        postgresql_where=sa.text("cleared_at IS NULL"),
    )

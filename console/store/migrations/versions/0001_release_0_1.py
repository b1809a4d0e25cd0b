"""Release 0.1's schema: records, quarantine, devices, availability, command results, node
sequence counters (release 0.1 made it with sqlite-utils, without a version table)."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _record_table(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Text, primary_key=True),
        *columns,
        sa.Column("received_at", sa.Text),
        sa.Column("payload", sa.Text, nullable=False),
    )


def upgrade() -> None:
    _record_table(
        "crossings",
        sa.Column("device_id", sa.Text),
        sa.Column("seq", sa.BigInteger),
        sa.Column("time", sa.Text),
        sa.Column("day", sa.Text),
        sa.Column("site", sa.Text),
        sa.Column("lane", sa.Text),
        sa.Column("direction", sa.Text),
        sa.Column("outcome", sa.Text),
        sa.Column("watchlist_version", sa.BigInteger),
        sa.Column("hit_count", sa.Integer),
        sa.Column("document_kind", sa.Text),
        sa.Column("clock_synced", sa.Integer),
    )
    op.create_index("idx_crossings_site_day_outcome", "crossings", ["site", "day", "outcome"])
    op.create_index("idx_crossings_day", "crossings", ["day"])
    op.create_index("idx_crossings_time", "crossings", ["time"])
    op.create_index("idx_crossings_device_id_seq", "crossings", ["device_id", "seq"])
    _record_table(
        "hits",
        sa.Column("crossing_id", sa.Text),
        sa.Column("device_id", sa.Text),
        sa.Column("seq", sa.BigInteger),
        sa.Column("time", sa.Text),
        sa.Column("site", sa.Text),
        sa.Column("lane", sa.Text),
        sa.Column("watchlist_version", sa.BigInteger),
    )
    op.create_index("idx_hits_crossing_id", "hits", ["crossing_id"])
    op.create_index("idx_hits_site_time", "hits", ["site", "time"])
    op.create_index("idx_hits_device_id_seq", "hits", ["device_id", "seq"])
    _record_table(
        "decisions",
        sa.Column("crossing_id", sa.Text),
        sa.Column("hit_id", sa.Text),
        sa.Column("device_id", sa.Text),
        sa.Column("seq", sa.BigInteger),
        sa.Column("time", sa.Text),
        sa.Column("officer_id", sa.Text),
        sa.Column("decision", sa.Text),
        sa.Column("decided_at", sa.Text),
    )
    op.create_index("idx_decisions_crossing_id", "decisions", ["crossing_id"])
    op.create_index("idx_decisions_device_id_seq", "decisions", ["device_id", "seq"])
    op.create_table(
        "quarantine",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.Text),
        sa.Column("received_at", sa.Text),
        sa.Column("last_received_at", sa.Text),
        sa.Column("times", sa.Integer),
        sa.Column("topic", sa.Text),
        sa.Column("device_id", sa.Text),
        sa.Column("record_id", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("path", sa.Text),
        sa.Column("payload", sa.LargeBinary),
    )
    op.create_index("idx_quarantine_digest", "quarantine", ["digest"], unique=True)
    op.create_index(
        "idx_quarantine_device_id_received_at", "quarantine", ["device_id", "received_at"]
    )
    op.create_table(
        "devices",
        sa.Column("device_id", sa.Text, primary_key=True),
        sa.Column("state", sa.Text),
        sa.Column("session", sa.BigInteger),
        sa.Column("agent_version", sa.Text),
        sa.Column("state_time", sa.Text),
        sa.Column("last_birth_at", sa.Text),
        sa.Column("last_offline_at", sa.Text),
        sa.Column("offline_reason", sa.Text),
        sa.Column("health", sa.Text),
        sa.Column("health_time", sa.Text),
        sa.Column("health_seq", sa.BigInteger),
        sa.Column("health_session", sa.BigInteger),
        sa.Column("health_received_at", sa.Text),
        sa.Column("last_seen_at", sa.Text),
    )
    op.create_table(
        "availability_log",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text),
        sa.Column("state", sa.Text),
        sa.Column("session", sa.BigInteger),
        sa.Column("reason", sa.Text),
        sa.Column("time", sa.Text),
        sa.Column("received_at", sa.Text),
        sa.Column("applied", sa.Integer),
        sa.Column("payload", sa.Text),
    )
    op.create_index(
        "idx_availability_log_device_id_received_at",
        "availability_log",
        ["device_id", "received_at"],
    )
    op.create_table(
        "command_results",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text),
        sa.Column("command_id", sa.Text),
        sa.Column("status", sa.Text),
        sa.Column("time", sa.Text),
        sa.Column("received_at", sa.Text),
        sa.Column("payload", sa.Text),
    )
    op.create_index("idx_command_results_command_id", "command_results", ["command_id"])
    op.create_table(
        "console_nodes",
        sa.Column("node_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger),
    )

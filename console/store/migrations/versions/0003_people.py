"""The console for people: accounts, login failures (lockout), the audit log with its
hash chain and purge anchor, fleet alerts, and supervisors' dispositions of referrals."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("agency", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("posts", sa.Text, nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("must_change_password", sa.Integer, nullable=False),
        sa.Column("disabled", sa.Integer, nullable=False),
        sa.Column("api_token_hash", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("password_changed_at", sa.Text),
    )
    op.create_index("idx_users_username", "users", ["username"], unique=True)
    op.create_index("idx_users_api_token_hash", "users", ["api_token_hash"], unique=True)
    op.create_table(
        "login_failures",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
    )
    op.create_index("idx_login_failures_username_at", "login_failures", ["username", "at"])
    op.create_index("idx_login_failures_address_at", "login_failures", ["address", "at"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("agency", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text),
        sa.Column("purpose_text", sa.Text),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("records", sa.Text, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("prev_hash", sa.Text, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
    )
    op.create_index("idx_audit_log_at", "audit_log", ["at"])
    op.create_index("idx_audit_log_username_at", "audit_log", ["username", "at"])
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.Text, nullable=False),
        sa.Column("purged_at", sa.Text, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("raised_at", sa.Text, nullable=False),
        sa.Column("cleared_at", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("idx_alerts_open", "alerts", ["device_id", "rule", "cleared_at"])
    op.create_index("idx_alerts_raised_at", "alerts", ["raised_at"])
    op.create_table(
        "dispositions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("crossing_id", sa.Text, nullable=False),
        sa.Column("hit_id", sa.Text),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("disposition", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
    )
    op.create_index("idx_dispositions_crossing_id", "dispositions", ["crossing_id"])

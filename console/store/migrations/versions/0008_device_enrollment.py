"""Device enrollment: one-time tokens (kept as their SHA-256 only) and the certificates the
console's device CA issued, with their revocations."""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "enrollment_tokens",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("post", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("replaces", sa.Integer, nullable=False, server_default="0"),
        sa.Column("used_at", sa.Text),
    )
    op.create_index("idx_enrollment_tokens_device_id", "enrollment_tokens", ["device_id"])
    op.create_table(
        "device_certificates",
        sa.Column("serial", sa.Text, primary_key=True),
        sa.Column("device_id", sa.Text, nullable=False),
        sa.Column("post", sa.Text),
        sa.Column("issued_at", sa.Text, nullable=False),
        sa.Column("not_after", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Text),
        sa.Column("reason", sa.Text),
    )
    op.create_index("idx_device_certificates_device_id", "device_certificates", ["device_id"])

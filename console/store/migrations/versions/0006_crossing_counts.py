"""Crossings per post, day, direction and outcome (``crossing_counts``), kept by the writer;
filled here from the crossings already stored, in one statement."""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "crossing_counts",
        sa.Column("site", sa.Text, primary_key=True),
        sa.Column("day", sa.Text, primary_key=True),
        sa.Column("direction", sa.Text, primary_key=True),
        sa.Column("outcome", sa.Text, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO crossing_counts (site, day, direction, outcome, count) "
        "SELECT site, day, direction, outcome, count(*) FROM crossings "
        "GROUP BY site, day, direction, outcome"
    )

"""The rollup read in order: ``crossing_counts`` indexed by post, day and outcome, with the count
(a covering index), so ``/api/crossings/counts`` sums each group as the index gives it instead of
hashing 58,000 rows and sorting the 29,000 groups.

PostgreSQL also gets the columns' joint ``ndistinct`` statistics: without them the planner
multiplies the columns' separate estimates, expects a fifth of the real number of groups, and
keeps the hash and the sort (on 10M crossings: 100 ms instead of 30 for the query alone).
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_index(
        "idx_crossing_counts_site_day_outcome",
        "crossing_counts",
        ["site", "day", "outcome", "count"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE STATISTICS crossing_counts_site_day_outcome (ndistinct) "
            "ON site, day, outcome FROM crossing_counts"
        )
    op.execute("ANALYZE crossing_counts")

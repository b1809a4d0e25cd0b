"""Search keys: crossings by document number (as sent, and OCR-folded as the kiosk's matcher
folds it) and issuing state; screening hits by the traveller's name (sorted tokens, and the
phonetic codes of the name's units in ``hit_names``); the referral queue's indexes; one
supervisor disposition per referral.

Existing rows are filled in here, in the same transaction: crossings in one ``UPDATE``
(SQLite with the matcher's own ``document_key`` as an SQL function, PostgreSQL with the same
folding in SQL), hits in batches through :mod:`mqtt_schemas.name_matching` (a name needs
Python to normalise).
"""

import json
import string

import sqlalchemy as sa
from alembic import op

from console.store.schema import hit_name, hit_name_rows, name_key
from mqtt_schemas.name_matching import document_key

revision = "0005"
down_revision = "0004"

_BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("crossings") as batch:  # SQLite: plain ADD COLUMN, no copy
        batch.add_column(sa.Column("document_number", sa.Text))
        batch.add_column(sa.Column("issuing_state", sa.Text))
        batch.add_column(sa.Column("document_key", sa.Text))
    with op.batch_alter_table("hits") as batch:
        batch.add_column(sa.Column("name_key", sa.Text))
    op.create_table(
        "hit_names",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("time", sa.Text, primary_key=True),
        sa.Column("crossing_id", sa.Text, primary_key=True),
        sa.Column("hit_id", sa.Text, primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    _fill_crossings()
    _fill_hits()
    op.create_index("idx_crossings_document_key", "crossings", ["document_key"])
    referred = sa.text("outcome = 'refer' AND hit_count = 0")
    op.create_index(
        "idx_crossings_referred",
        "crossings",
        ["time", "id", "site"],
        sqlite_where=referred,
        postgresql_where=referred,
    )
    op.create_index("idx_hits_time_crossing_id_site", "hits", ["time", "crossing_id", "site"])
    op.create_index(
        "idx_decisions_latest",
        "decisions",
        ["crossing_id", "decided_at", "time", "id", "decision"],
    )
    op.create_index(
        "idx_dispositions_one_per_crossing", "dispositions", ["crossing_id"], unique=True
    )
    escalations = sa.text("decision = 'escalate'")
    op.create_index(
        "idx_decisions_escalations",
        "decisions",
        ["time", "crossing_id"],
        sqlite_where=escalations,
        postgresql_where=escalations,
    )


def _fill_crossings() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.connection.driver_connection.create_function(
            "borderlane_document_key", 1, document_key, deterministic=True
        )
        op.execute(
            "UPDATE crossings SET "
            "document_number = json_extract(payload, '$.document.number'), "
            "issuing_state = json_extract(payload, '$.document.issuing_state'), "
            "document_key = borderlane_document_key(json_extract(payload, '$.document.number'))"
        )
        return
    # PostgreSQL: document_key in SQL, its letter folding read off the function itself.
    folded = {c: document_key(c) for c in string.ascii_uppercase}
    letters = "".join(c for c, key in folded.items() if key != c)
    digits = "".join(folded[c] for c in letters)
    number = "(payload::json #>> '{document,number}')"
    op.execute(
        "UPDATE crossings SET "
        f"document_number = {number}, "
        "issuing_state = payload::json #>> '{document,issuing_state}', "
        f"document_key = translate(regexp_replace(upper({number}), '[^0-9A-Z]', '', 'g'), "
        f"'{letters}', '{digits}')"
    )


def _fill_hits() -> None:
    bind = op.get_bind()
    hits = sa.table("hits", sa.column("id", sa.Text), sa.column("payload", sa.Text))
    set_key = sa.text("UPDATE hits SET name_key = :name_key WHERE id = :hit_id")
    add_codes = sa.text(
        "INSERT INTO hit_names (code, time, crossing_id, hit_id, site) "
        "VALUES (:code, :time, :crossing_id, :hit_id, :site)"
    )
    last = ""
    while True:
        batch = bind.execute(
            sa.select(hits.c.id, hits.c.payload)
            .where(hits.c.id > last)
            .order_by(hits.c.id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        keys, codes = [], []
        for hit_id, text in batch:
            payload = json.loads(text)
            keys.append({"name_key": name_key(hit_name(payload)), "hit_id": hit_id})
            codes += hit_name_rows(hit_id, payload)
        bind.execute(set_key, keys)
        if codes:
            bind.execute(add_codes, codes)
        last = batch[-1][0]

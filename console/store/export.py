"""Export stored crossings: JSON Lines (each record as the kiosk sent it) or CSV (flat columns)."""

from __future__ import annotations

import csv
import json
from typing import Literal, TextIO

from sqlalchemy import Connection

from .queries import CROSSING_COLUMNS, iter_crossings

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")


def export_crossings(conn: Connection, fmt: Format, out: TextIO) -> int:
    """Write every crossing to *out* in *fmt*; return how many were written."""
    count = 0
    if fmt == "jsonl":
        for (text,) in iter_crossings(conn, ("payload",)):
            if "\n" in text or "\r" in text:  # stored as received: may be pretty-printed
                text = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
            out.write(text)
            out.write("\n")
            count += 1
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CROSSING_COLUMNS)
        for row in iter_crossings(conn, CROSSING_COLUMNS):
            writer.writerow(row)
            count += 1
    else:
        raise ValueError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return count

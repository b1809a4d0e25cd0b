"""Export stored crossings: JSON Lines (each record as the kiosk sent it) or CSV (flat columns)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
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


def open_private(path: Path) -> TextIO:
    """*path* opened for writing an export, 0600 whatever the umask (an existing file is
    truncated and made 0600): an export holds every traveller's crossing."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
        return open(descriptor, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(descriptor)
        raise

"""How fast the kiosk reads an MRZ: documents parsed per second, TD1, TD2 and TD3, on one core.

The lane has 150 ms from tap to decision, and parsing the MRZ must be a negligible share of it.
The target, 10,000 parses/s, is 0.1 ms per document: under 0.1% of the budget here, and still
well under 1% on a Raspberry Pi-class core, a few times slower than a developer machine.
Parsing includes everything the lane gets: check digits, dates, code list, OCR repair attempts.
"""

from __future__ import annotations

import datetime

from edge.documents.mrz import compose, parse

from . import Figure, at_least, rate

TARGET_PER_S = 10_000
TODAY = datetime.date(2025, 6, 1)


def _document(format: str) -> str:
    return compose(
        format,
        issuing_state="NZL",
        surname="VAN DER BERG",
        given_names="ANNA MARIA",
        document_number="D23145890734" if format == "TD1" else "L898902C3",
        nationality="NZL",
        birth_date=datetime.date(1974, 8, 12),
        sex="F",
        expiry_date=datetime.date(2031, 4, 15),
        optional_data="ZE184226B" if format == "TD3" else "",
    )


def run(quick: bool) -> list[Figure]:
    count = 200 if quick else 20_000
    figures = []
    for format in ("TD1", "TD2", "TD3"):
        text = _document(format)
        parse(text, today=TODAY)
        per_second = rate(lambda t=text: parse(t, today=TODAY), count)
        note = "one core; 12-character number" if format == "TD1" else "one core"
        figures.append(at_least(f"parse {format}", per_second, "MRZs/s", TARGET_PER_S, note))

    # A read with a letter in each date: the repairs are made and confirmed (informative).
    damaged = _document("TD3").replace("7408122F3104", "74O8122F3I04")
    assert len(parse(damaged, today=TODAY).corrections) == 2
    figures.append(
        Figure(
            "parse TD3, 2 OCR repairs",
            rate(lambda: parse(damaged, today=TODAY), count),
            "MRZs/s",
            note="one core",
        )
    )
    figures.append(
        Figure("compose TD3", rate(lambda: _document("TD3"), count), "MRZs/s", note="one core")
    )
    return figures

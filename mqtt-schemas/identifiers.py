"""The identifier patterns of the contract, for Python code that checks ids before they go out.

The JSON Schemas state these patterns in ``schemas/defs.v1.json``; this module states them once
for Python, character for character the same (a contract test compares them), so a kiosk never
builds a payload the console would refuse, and a card, a config file or a topic is held to the
same rule as the wire:

``NAME`` (defs ``name``)
    A short machine name: a lower-case letter, then up to 63 of ``a-z 0-9 . _ -``. Site ids
    (``bz-santa-elena``), lane ids, CBIC categories, check names, watchlist list names.
``DEVICE_ID`` (defs ``device_id``)
    A letter or digit, then up to 63 of ``A-Z a-z 0-9 . _ -``. A kiosk's device id is also its
    certificate common name, MQTT username and a file name, and the console's node id takes
    the same form, so the alphabet is one that is safe in all of those places (no ``+ # /``).
``KEY_ID`` (defs ``key_id``)
    The same pattern as a device id: a name for a signing key, which also names files.
``COUNTRY`` (defs ``country``)
    An ICAO Doc 9303 state code without its ``<`` fillers: ``D``, ``BLZ``, ``EUE``, ``XXA``.
``DOCUMENT_NUMBER`` (defs ``document_number``)
    A document or card number, upper case, fillers removed: up to 24 of ``A-Z 0-9``.

Match with ``fullmatch``: in Python's :mod:`re`, ``$`` also matches before a final newline, so
``NAME.match("lane-1\\n")`` succeeds where JSON Schema's ``pattern`` (ECMA-262) fails it::

    >>> bool(NAME.fullmatch("bz-santa-elena")), bool(NAME.fullmatch("lane-1\\n"))
    (True, False)
    >>> bool(DEVICE_ID.fullmatch("Kiosk-BZ-01")), bool(DEVICE_ID.fullmatch("kiosk/01"))
    (True, False)
"""

from __future__ import annotations

import re

__all__ = [
    "COUNTRY",
    "COUNTRY_PATTERN",
    "DEVICE_ID",
    "DEVICE_ID_PATTERN",
    "DOCUMENT_NUMBER",
    "DOCUMENT_NUMBER_PATTERN",
    "KEY_ID",
    "KEY_ID_PATTERN",
    "NAME",
    "NAME_PATTERN",
]

NAME_PATTERN = r"^[a-z][a-z0-9._-]{0,63}$"
"""defs ``name``: site, lane, category, check and list names."""
NAME = re.compile(NAME_PATTERN)

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""defs ``device_id``: kiosk device ids and console node ids."""
DEVICE_ID = re.compile(DEVICE_ID_PATTERN)

KEY_ID_PATTERN = DEVICE_ID_PATTERN
"""defs ``key_id``: names of signing keys; the schema gives them the device id's pattern."""
KEY_ID = DEVICE_ID

COUNTRY_PATTERN = r"^[A-Z]{1,3}$"
"""defs ``country``: issuing states and nationalities as the MRZ writes them, fillers removed."""
COUNTRY = re.compile(COUNTRY_PATTERN)

DOCUMENT_NUMBER_PATTERN = r"^[A-Z0-9]{1,24}$"
"""defs ``document_number``: passport, identity card and CBIC card numbers."""
DOCUMENT_NUMBER = re.compile(DOCUMENT_NUMBER_PATTERN)

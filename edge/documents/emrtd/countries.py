"""Country codes in certificates (ISO 3166-1 alpha-2) against those in the MRZ (ICAO alpha-3).

A CSCA or Document Signer certificate names its country in the subject's ``C`` attribute with
the two-letter ISO 3166-1 code (``DE``, ``FR``); the MRZ names the issuing state with the
three-letter code of Doc 9303 Part 3 (``D`` for Germany, ``FRA``). Passive authentication
compares the two (:func:`issuer_matches`), so it needs the mapping, and the few places where
ICAO differs from ISO:

- Germany is ``D`` in the MRZ (``DEU`` is accepted too);
- the United Kingdom's CSCA (``GB``) also signs documents issued with ``GBD``, ``GBN``,
  ``GBO``, ``GBP`` and ``GBS``;
- organisations have no ISO alpha-2 code; their certificates use a reserved or user-assigned
  one: ``EU`` for the European Union (``EUE``), ``UN`` for the United Nations (``UNO``,
  ``UNA``, ``UNK``), ``XK`` for Kosovo (``RKS``);
- Doc 9303's specimens are issued by Utopia (``UTO``); our test and simulation PKI gives its
  certificates the unassigned code ``UT``. Only a trust store holding such a CSCA makes that
  mapping matter.

The ISO 3166-1 table (alpha-2 to alpha-3, :data:`ALPHA2_TO_ALPHA3`) and the MRZ codes
themselves live in :mod:`edge.documents.icao_states`; this module adds what only passive
authentication needs.

>>> issuer_matches("DE", "D<<"), issuer_matches("FR", "FRA"), issuer_matches("FR", "D")
(True, True, False)
"""

from __future__ import annotations

from collections.abc import Mapping

from edge.documents.icao_states import ALPHA2_TO_ALPHA3

__all__ = ["ALPHA2_TO_ALPHA3", "ICAO_ISSUER_CODES", "issuer_codes", "issuer_matches"]

#: Certificate country codes whose documents carry other (or more) MRZ codes than ISO alpha-3.
ICAO_ISSUER_CODES: Mapping[str, frozenset[str]] = {
    "DE": frozenset({"D", "DEU"}),
    "GB": frozenset({"GBR", "GBD", "GBN", "GBO", "GBP", "GBS"}),
    "EU": frozenset({"EUE"}),
    "UN": frozenset({"UNO", "UNA", "UNK"}),
    "XK": frozenset({"RKS"}),
    "UT": frozenset({"UTO"}),  # specimen documents and our simulated passports
}


def issuer_codes(alpha2: str) -> frozenset[str]:
    """The MRZ issuing-state codes a certificate with country ``alpha2`` may sign for."""
    code = alpha2.strip().upper()
    if code in ICAO_ISSUER_CODES:
        return ICAO_ISSUER_CODES[code]
    alpha3 = ALPHA2_TO_ALPHA3.get(code)
    return frozenset({alpha3}) if alpha3 else frozenset()


def issuer_matches(alpha2: str, mrz_code: str) -> bool:
    """Whether a certificate of country ``alpha2`` fits the MRZ issuing state ``mrz_code``.

    Fillers are ignored (``D<<`` is ``D``); case is ignored on both sides.
    """
    return mrz_code.strip().upper().rstrip("<") in issuer_codes(alpha2)

"""The codes an MRZ uses for the issuing state and the holder's nationality (ICAO Doc 9303 Part 3).

An MRZ names the issuing state or organization, and the holder's nationality, with a code of
up to three letters padded with ``<``. Doc 9303 Part 3, Section 5 lists the codes a reader
should know:

- every ISO 3166-1 alpha-3 code (:data:`ISO_3166_ALPHA3`), except that Germany writes the
  one-letter ``D`` (``D<<`` in the MRZ) where ISO has ``DEU``;
- codes reserved with the ISO 3166 maintenance agency for the MRTD world: the European Union
  (``EUE``), the five kinds of British nationals that are not British citizens (``GBD``,
  ``GBN``, ``GBO``, ``GBP``, ``GBS``), the United Nations and its agencies (``UNO``, ``UNA``),
  UNMIK travel documents for residents of Kosovo (``UNK``), and ``RKS`` (Republic of Kosovo);
- codes for people without a defined nationality: ``XXA`` (stateless, 1954 Convention),
  ``XXB`` (refugee, 1951 Convention), ``XXC`` (other refugee) and ``XXX`` (unspecified);
- codes for other issuing authorities, the organizations that issue travel documents to their
  officials (``XBA``, ``XIM``, ``XCC``, ``XCE``, ``XCO``, ``XEC``, ``XPO``, ``XES``, ``XMP``,
  ``XOM``, ``XDC``).

Doc 9303's own specimens are issued by ``UTO``, the fictional state of Utopia; it is known here
as a *specimen* code (:data:`SPECIMEN`), so a specimen is recognised and can still be flagged.

This module is data and lookups only, and holds the kiosk's one table of ISO 3166-1 codes
(:data:`ISO_3166`): alpha-3 for the MRZ, alpha-2 for the certificates of passive
authentication, which maps one to the other (:data:`ALPHA2_TO_ALPHA3`, used by
:mod:`edge.documents.emrtd.countries`). It was generated from Debian's ``iso-codes`` (4.15),
whose ``alpha_2`` and ``alpha_3`` columns are the ISO 3166-1 list; names are English short names.

>>> name("D")
'Germany'
>>> is_known("XXA"), is_known("ABC")
(True, False)
>>> is_specimen("UTO")
True
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "ALPHA2_TO_ALPHA3",
    "CODES",
    "DOC_9303_CODES",
    "ISO_3166",
    "ISO_3166_ALPHA3",
    "SPECIMEN",
    "is_known",
    "is_specimen",
    "name",
]

#: ISO 3166-1: every code currently assigned, as (alpha-2, alpha-3, English short name), in
#: alpha-3 order. The one table of ISO codes on the kiosk: the MRZ uses alpha-3, certificates
#: alpha-2 (see :mod:`edge.documents.emrtd.countries`).
ISO_3166: tuple[tuple[str, str, str], ...] = (
    ("AW", "ABW", "Aruba"),
    ("AF", "AFG", "Afghanistan"),
    ("AO", "AGO", "Angola"),
    ("AI", "AIA", "Anguilla"),
    ("AX", "ALA", "Åland Islands"),
    ("AL", "ALB", "Albania"),
    ("AD", "AND", "Andorra"),
    ("AE", "ARE", "United Arab Emirates"),
    ("AR", "ARG", "Argentina"),
    ("AM", "ARM", "Armenia"),
    ("AS", "ASM", "American Samoa"),
    ("AQ", "ATA", "Antarctica"),
    ("TF", "ATF", "French Southern Territories"),
    ("AG", "ATG", "Antigua and Barbuda"),
    ("AU", "AUS", "Australia"),
    ("AT", "AUT", "Austria"),
    ("AZ", "AZE", "Azerbaijan"),
    ("BI", "BDI", "Burundi"),
    ("BE", "BEL", "Belgium"),
    ("BJ", "BEN", "Benin"),
    ("BQ", "BES", "Bonaire, Sint Eustatius and Saba"),
    ("BF", "BFA", "Burkina Faso"),
    ("BD", "BGD", "Bangladesh"),
    ("BG", "BGR", "Bulgaria"),
    ("BH", "BHR", "Bahrain"),
    ("BS", "BHS", "Bahamas"),
    ("BA", "BIH", "Bosnia and Herzegovina"),
    ("BL", "BLM", "Saint Barthélemy"),
    ("BY", "BLR", "Belarus"),
    ("BZ", "BLZ", "Belize"),
    ("BM", "BMU", "Bermuda"),
    ("BO", "BOL", "Bolivia"),
    ("BR", "BRA", "Brazil"),
    ("BB", "BRB", "Barbados"),
    ("BN", "BRN", "Brunei Darussalam"),
    ("BT", "BTN", "Bhutan"),
    ("BV", "BVT", "Bouvet Island"),
    ("BW", "BWA", "Botswana"),
    ("CF", "CAF", "Central African Republic"),
    ("CA", "CAN", "Canada"),
    ("CC", "CCK", "Cocos (Keeling) Islands"),
    ("CH", "CHE", "Switzerland"),
    ("CL", "CHL", "Chile"),
    ("CN", "CHN", "China"),
    ("CI", "CIV", "Côte d'Ivoire"),
    ("CM", "CMR", "Cameroon"),
    ("CD", "COD", "Congo, The Democratic Republic of the"),
    ("CG", "COG", "Congo"),
    ("CK", "COK", "Cook Islands"),
    ("CO", "COL", "Colombia"),
    ("KM", "COM", "Comoros"),
    ("CV", "CPV", "Cabo Verde"),
    ("CR", "CRI", "Costa Rica"),
    ("CU", "CUB", "Cuba"),
    ("CW", "CUW", "Curaçao"),
    ("CX", "CXR", "Christmas Island"),
    ("KY", "CYM", "Cayman Islands"),
    ("CY", "CYP", "Cyprus"),
    ("CZ", "CZE", "Czechia"),
    ("DE", "DEU", "Germany"),
    ("DJ", "DJI", "Djibouti"),
    ("DM", "DMA", "Dominica"),
    ("DK", "DNK", "Denmark"),
    ("DO", "DOM", "Dominican Republic"),
    ("DZ", "DZA", "Algeria"),
    ("EC", "ECU", "Ecuador"),
    ("EG", "EGY", "Egypt"),
    ("ER", "ERI", "Eritrea"),
    ("EH", "ESH", "Western Sahara"),
    ("ES", "ESP", "Spain"),
    ("EE", "EST", "Estonia"),
    ("ET", "ETH", "Ethiopia"),
    ("FI", "FIN", "Finland"),
    ("FJ", "FJI", "Fiji"),
    ("FK", "FLK", "Falkland Islands (Malvinas)"),
    ("FR", "FRA", "France"),
    ("FO", "FRO", "Faroe Islands"),
    ("FM", "FSM", "Micronesia, Federated States of"),
    ("GA", "GAB", "Gabon"),
    ("GB", "GBR", "United Kingdom"),
    ("GE", "GEO", "Georgia"),
    ("GG", "GGY", "Guernsey"),
    ("GH", "GHA", "Ghana"),
    ("GI", "GIB", "Gibraltar"),
    ("GN", "GIN", "Guinea"),
    ("GP", "GLP", "Guadeloupe"),
    ("GM", "GMB", "Gambia"),
    ("GW", "GNB", "Guinea-Bissau"),
    ("GQ", "GNQ", "Equatorial Guinea"),
    ("GR", "GRC", "Greece"),
    ("GD", "GRD", "Grenada"),
    ("GL", "GRL", "Greenland"),
    ("GT", "GTM", "Guatemala"),
    ("GF", "GUF", "French Guiana"),
    ("GU", "GUM", "Guam"),
    ("GY", "GUY", "Guyana"),
    ("HK", "HKG", "Hong Kong"),
    ("HM", "HMD", "Heard Island and McDonald Islands"),
    ("HN", "HND", "Honduras"),
    ("HR", "HRV", "Croatia"),
    ("HT", "HTI", "Haiti"),
    ("HU", "HUN", "Hungary"),
    ("ID", "IDN", "Indonesia"),
    ("IM", "IMN", "Isle of Man"),
    ("IN", "IND", "India"),
    ("IO", "IOT", "British Indian Ocean Territory"),
    ("IE", "IRL", "Ireland"),
    ("IR", "IRN", "Iran"),
    ("IQ", "IRQ", "Iraq"),
    ("IS", "ISL", "Iceland"),
    ("IL", "ISR", "Israel"),
    ("IT", "ITA", "Italy"),
    ("JM", "JAM", "Jamaica"),
    ("JE", "JEY", "Jersey"),
    ("JO", "JOR", "Jordan"),
    ("JP", "JPN", "Japan"),
    ("KZ", "KAZ", "Kazakhstan"),
    ("KE", "KEN", "Kenya"),
    ("KG", "KGZ", "Kyrgyzstan"),
    ("KH", "KHM", "Cambodia"),
    ("KI", "KIR", "Kiribati"),
    ("KN", "KNA", "Saint Kitts and Nevis"),
    ("KR", "KOR", "South Korea"),
    ("KW", "KWT", "Kuwait"),
    ("LA", "LAO", "Laos"),
    ("LB", "LBN", "Lebanon"),
    ("LR", "LBR", "Liberia"),
    ("LY", "LBY", "Libya"),
    ("LC", "LCA", "Saint Lucia"),
    ("LI", "LIE", "Liechtenstein"),
    ("LK", "LKA", "Sri Lanka"),
    ("LS", "LSO", "Lesotho"),
    ("LT", "LTU", "Lithuania"),
    ("LU", "LUX", "Luxembourg"),
    ("LV", "LVA", "Latvia"),
    ("MO", "MAC", "Macao"),
    ("MF", "MAF", "Saint Martin (French part)"),
    ("MA", "MAR", "Morocco"),
    ("MC", "MCO", "Monaco"),
    ("MD", "MDA", "Moldova"),
    ("MG", "MDG", "Madagascar"),
    ("MV", "MDV", "Maldives"),
    ("MX", "MEX", "Mexico"),
    ("MH", "MHL", "Marshall Islands"),
    ("MK", "MKD", "North Macedonia"),
    ("ML", "MLI", "Mali"),
    ("MT", "MLT", "Malta"),
    ("MM", "MMR", "Myanmar"),
    ("ME", "MNE", "Montenegro"),
    ("MN", "MNG", "Mongolia"),
    ("MP", "MNP", "Northern Mariana Islands"),
    ("MZ", "MOZ", "Mozambique"),
    ("MR", "MRT", "Mauritania"),
    ("MS", "MSR", "Montserrat"),
    ("MQ", "MTQ", "Martinique"),
    ("MU", "MUS", "Mauritius"),
    ("MW", "MWI", "Malawi"),
    ("MY", "MYS", "Malaysia"),
    ("YT", "MYT", "Mayotte"),
    ("NA", "NAM", "Namibia"),
    ("NC", "NCL", "New Caledonia"),
    ("NE", "NER", "Niger"),
    ("NF", "NFK", "Norfolk Island"),
    ("NG", "NGA", "Nigeria"),
    ("NI", "NIC", "Nicaragua"),
    ("NU", "NIU", "Niue"),
    ("NL", "NLD", "Netherlands"),
    ("NO", "NOR", "Norway"),
    ("NP", "NPL", "Nepal"),
    ("NR", "NRU", "Nauru"),
    ("NZ", "NZL", "New Zealand"),
    ("OM", "OMN", "Oman"),
    ("PK", "PAK", "Pakistan"),
    ("PA", "PAN", "Panama"),
    ("PN", "PCN", "Pitcairn"),
    ("PE", "PER", "Peru"),
    ("PH", "PHL", "Philippines"),
    ("PW", "PLW", "Palau"),
    ("PG", "PNG", "Papua New Guinea"),
    ("PL", "POL", "Poland"),
    ("PR", "PRI", "Puerto Rico"),
    ("KP", "PRK", "North Korea"),
    ("PT", "PRT", "Portugal"),
    ("PY", "PRY", "Paraguay"),
    ("PS", "PSE", "Palestine, State of"),
    ("PF", "PYF", "French Polynesia"),
    ("QA", "QAT", "Qatar"),
    ("RE", "REU", "Réunion"),
    ("RO", "ROU", "Romania"),
    ("RU", "RUS", "Russian Federation"),
    ("RW", "RWA", "Rwanda"),
    ("SA", "SAU", "Saudi Arabia"),
    ("SD", "SDN", "Sudan"),
    ("SN", "SEN", "Senegal"),
    ("SG", "SGP", "Singapore"),
    ("GS", "SGS", "South Georgia and the South Sandwich Islands"),
    ("SH", "SHN", "Saint Helena, Ascension and Tristan da Cunha"),
    ("SJ", "SJM", "Svalbard and Jan Mayen"),
    ("SB", "SLB", "Solomon Islands"),
    ("SL", "SLE", "Sierra Leone"),
    ("SV", "SLV", "El Salvador"),
    ("SM", "SMR", "San Marino"),
    ("SO", "SOM", "Somalia"),
    ("PM", "SPM", "Saint Pierre and Miquelon"),
    ("RS", "SRB", "Serbia"),
    ("SS", "SSD", "South Sudan"),
    ("ST", "STP", "Sao Tome and Principe"),
    ("SR", "SUR", "Suriname"),
    ("SK", "SVK", "Slovakia"),
    ("SI", "SVN", "Slovenia"),
    ("SE", "SWE", "Sweden"),
    ("SZ", "SWZ", "Eswatini"),
    ("SX", "SXM", "Sint Maarten (Dutch part)"),
    ("SC", "SYC", "Seychelles"),
    ("SY", "SYR", "Syria"),
    ("TC", "TCA", "Turks and Caicos Islands"),
    ("TD", "TCD", "Chad"),
    ("TG", "TGO", "Togo"),
    ("TH", "THA", "Thailand"),
    ("TJ", "TJK", "Tajikistan"),
    ("TK", "TKL", "Tokelau"),
    ("TM", "TKM", "Turkmenistan"),
    ("TL", "TLS", "Timor-Leste"),
    ("TO", "TON", "Tonga"),
    ("TT", "TTO", "Trinidad and Tobago"),
    ("TN", "TUN", "Tunisia"),
    ("TR", "TUR", "Türkiye"),
    ("TV", "TUV", "Tuvalu"),
    ("TW", "TWN", "Taiwan"),
    ("TZ", "TZA", "Tanzania"),
    ("UG", "UGA", "Uganda"),
    ("UA", "UKR", "Ukraine"),
    ("UM", "UMI", "United States Minor Outlying Islands"),
    ("UY", "URY", "Uruguay"),
    ("US", "USA", "United States"),
    ("UZ", "UZB", "Uzbekistan"),
    ("VA", "VAT", "Holy See (Vatican City State)"),
    ("VC", "VCT", "Saint Vincent and the Grenadines"),
    ("VE", "VEN", "Venezuela"),
    ("VG", "VGB", "Virgin Islands, British"),
    ("VI", "VIR", "Virgin Islands, U.S."),
    ("VN", "VNM", "Vietnam"),
    ("VU", "VUT", "Vanuatu"),
    ("WF", "WLF", "Wallis and Futuna"),
    ("WS", "WSM", "Samoa"),
    ("YE", "YEM", "Yemen"),
    ("ZA", "ZAF", "South Africa"),
    ("ZM", "ZMB", "Zambia"),
    ("ZW", "ZWE", "Zimbabwe"),
)

#: ISO 3166-1 alpha-3 -> English short name.
ISO_3166_ALPHA3: Mapping[str, str] = {alpha3: name for _, alpha3, name in ISO_3166}

#: ISO 3166-1 alpha-2 -> alpha-3, in alpha-2 order.
ALPHA2_TO_ALPHA3: Mapping[str, str] = dict(
    sorted((alpha2, alpha3) for alpha2, alpha3, _ in ISO_3166)
)

#: The codes Doc 9303 Part 3 adds to (or uses instead of) ISO 3166-1.
DOC_9303_CODES: Mapping[str, str] = {
    "D": "Germany",
    "EUE": "European Union",
    "GBD": "British Overseas Territories Citizen",
    "GBN": "British National (Overseas)",
    "GBO": "British Overseas Citizen",
    "GBP": "British Protected Person",
    "GBS": "British Subject",
    "RKS": "Republic of Kosovo",
    "UNA": "Specialized agency of the United Nations",
    "UNK": "Resident of Kosovo (travel document issued by UNMIK)",
    "UNO": "United Nations Organization",
    "XXA": "Stateless person (1954 Convention)",
    "XXB": "Refugee (1951 Convention)",
    "XXC": "Refugee (other than XXB)",
    "XXX": "Person of unspecified nationality",
    "XBA": "African Development Bank",
    "XIM": "African Export-Import Bank",
    "XCC": "Caribbean Community",
    "XCE": "Council of Europe",
    "XCO": "Common Market for Eastern and Southern Africa",
    "XEC": "Economic Community of West African States",
    "XPO": "International Criminal Police Organization (INTERPOL)",
    "XES": "Organisation of Eastern Caribbean States",
    "XMP": "Parliamentary Assembly of the Mediterranean",
    "XOM": "Sovereign Military Order of Malta",
    "XDC": "Southern African Development Community",
}

#: Codes that only appear on specimen documents (Doc 9303's examples).
SPECIMEN: Mapping[str, str] = {"UTO": "Utopia"}

#: Every code this module knows, with its English name.
CODES: Mapping[str, str] = {**ISO_3166_ALPHA3, **DOC_9303_CODES, **SPECIMEN}


def name(code: str) -> str | None:
    """The English name of *code* (fillers ignored: ``"D<<"`` is ``"D"``), or ``None``."""
    return CODES.get(code.rstrip("<"))


def is_known(code: str) -> bool:
    """Whether *code* is an ISO 3166-1 alpha-3, Doc 9303 or specimen code."""
    return code.rstrip("<") in CODES


def is_specimen(code: str) -> bool:
    """Whether *code* only appears on specimen documents (``UTO``)."""
    return code.rstrip("<") in SPECIMEN

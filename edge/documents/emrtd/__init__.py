"""ePassport (eMRTD) chips, Doc 9303 Parts 10-12: pure code, no I/O.

============================  ==============================================================
module                        what it does
============================  ==============================================================
:mod:`.crypto`                3DES, retail MAC, ISO 9797-1 padding, the Doc 9303 KDF
:mod:`.bac`                   Basic Access Control, terminal (:class:`BacTerminal`) and chip
                              (:class:`BacChip`) sides
:mod:`.sm`                    3DES secure messaging, both sides (:class:`SecureMessaging`)
:mod:`edge.documents.tlv`     BER-TLV decoding and encoding (shared with the CBIC)
:mod:`.lds`                   LDS files: :class:`LdsFile`, EF.COM, DG1 (MRZ), DG2 (face)
:mod:`.sod`                   EF.SOD: parse, and build for tests and virtual chips
:mod:`.cms`                   CMS SignedData and signature verification
:mod:`.passive_auth`          Passive Authentication checks, the CSCA trust store, master lists
:mod:`.countries`             certificate alpha-2 vs MRZ alpha-3 country codes
:mod:`.reader`                the terminal's read sequence over a ``transmit`` callable
============================  ==============================================================
"""

"""The kiosk's trust anchors, read from files: CBIC issuer keys and ePassport CSCA certificates.

Kiosk-side I/O around the pure verifiers of :mod:`edge.documents`, which take an issuer trust
list (:class:`~edge.documents.cbic.IssuerTrustList`) and a CSCA store
(:class:`~edge.documents.emrtd.passive_auth.CscaStore`) and never read files; this module
builds them from what a technician or the provisioning gives::

    trust = load_trust_list("/etc/borderlane/cbic-issuers")       # <key id>.pem files, or JSON
    store = load_csca_store(["csca-bz.pem", "icao-master-list.ml"])

Every failure is a :class:`TrustStoreError` whose message names the file, so a command line or
the agent's start-up can print it as one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from edge.documents.cbic import IssuerTrustList, TrustListError
from edge.documents.emrtd.cms import CmsError, SignatureError, load_certificate
from edge.documents.emrtd.passive_auth import CscaStore, MasterListError

__all__ = ["CSCA_SUFFIXES", "TrustStoreError", "load_csca_store", "load_trust_list"]

#: Files a CSCA directory is searched for: PEM or DER certificates, ICAO master lists (.ml).
CSCA_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der", ".ml"})

_PEM = b"-----BEGIN"


class TrustStoreError(ValueError):
    """A trust file or directory that cannot be used; the message names it and says why."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TrustStoreError(f"{path}: {error.strerror or error}") from None


def load_trust_list(path: Path | str) -> IssuerTrustList:
    """The CBIC issuers to trust: a directory of ``<key id>.pem`` public keys (other files are
    ignored, so an issuer's ``.key`` beside them does no harm), or a JSON trust list file
    (``{"issuers": [{"key_id": ..., "public_key_pem": ...}]}``, see ``edge/documents/cbic.md``).
    """
    path = Path(path)
    try:
        if path.is_dir():
            keys = sorted(path.glob("*.pem"))
            if not keys:
                raise TrustStoreError(f"{path}: no issuer key (<key id>.pem) in this directory")
            return IssuerTrustList.from_pem({pem.stem: _read(pem) for pem in keys})
        return IssuerTrustList.from_json(_read(path))
    except TrustListError as error:
        raise TrustStoreError(f"{path}: {error}") from None


def _csca_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in CSCA_SUFFIXES)
        if not files:
            known = ", ".join(sorted(CSCA_SUFFIXES))
            raise TrustStoreError(f"{path}: no CSCA file ({known}) in this directory")
        return files
    if not path.exists():
        raise TrustStoreError(f"{path}: no such file or directory")
    return [path]


def load_csca_store(paths: Iterable[Path | str], *, at: datetime | None = None) -> CscaStore:
    """The CSCA certificates to trust, from files or directories of them.

    A file is a PEM bundle (any number of certificates, and CRLs of CSCAs in the store), one DER
    certificate, or an ICAO CSCA master list (CMS, usually ``.ml``). Certificates are loaded
    first, master lists after them: a master list is accepted only when its signer was issued
    by a CSCA already trusted (give the publishing state's CSCA too), checked at ``at``
    (default now). A directory stands for its files with the suffixes in :data:`CSCA_SUFFIXES`.
    """
    store = CscaStore()
    master_lists: list[tuple[Path, bytes]] = []
    for given in paths:
        for path in _csca_files(Path(given)):
            data = _read(path)
            try:
                if data.lstrip().startswith(_PEM):
                    if b"CERTIFICATE-----" not in data and b"X509 CRL-----" not in data:
                        raise TrustStoreError(f"{path}: no certificate or CRL in this PEM file")
                    store.load(data)
                    continue
                try:
                    certificate = load_certificate(data)
                except CmsError:
                    master_lists.append((path, data))
                    continue
                store.add(certificate)
            except (CmsError, SignatureError) as error:
                raise TrustStoreError(f"{path}: {error}") from None
    when = at if at is not None else datetime.now(UTC)
    for path, data in master_lists:
        try:
            store.add_master_list(data, at=when)
        except MasterListError as error:
            raise TrustStoreError(
                f"{path}: neither a DER certificate nor a usable master list ({error})"
            ) from None
    return store

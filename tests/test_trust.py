"""The kiosk's trust files (edge/trust.py): CBIC issuer keys and CSCA certificates."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.sim.cbic_issue import create_issuer, save_issuer, trust_list_for
from edge.sim.emrtd_pki import build_master_list, make_crl, make_csca, make_master_list_signer
from edge.trust import TrustStoreError, load_csca_store, load_trust_list

ISSUER = create_issuer("bz-cbic-test-1")
OTHER = create_issuer("bz-cbic-test-2")
UTOPIA = make_csca("UT")
PUBLISHER = make_csca("DE")


def test_issuer_keys_from_a_directory_or_a_json_list(tmp_path: Path) -> None:
    save_issuer(ISSUER, tmp_path / "keys")
    save_issuer(OTHER, tmp_path / "keys")  # the .key files beside the .pem are ignored
    assert load_trust_list(tmp_path / "keys").key_ids == ("bz-cbic-test-1", "bz-cbic-test-2")
    (tmp_path / "trust.json").write_text(trust_list_for(ISSUER).to_json())
    assert load_trust_list(tmp_path / "trust.json").key_ids == ("bz-cbic-test-1",)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d.mkdir(), "no issuer key (<key id>.pem) in this directory"),
        (lambda d: d.write_text("{}"), 'a trust list is an object with an "issuers" list'),
        (lambda d: d.write_text("not json"), "trust list is not JSON"),
        (lambda d: None, "No such file or directory"),
    ],
    ids=["empty directory", "not a trust list", "not JSON", "missing"],
)
def test_unusable_issuer_files_name_themselves(tmp_path: Path, setup, message: str) -> None:
    path = tmp_path / "issuers"
    setup(path)
    with pytest.raises(TrustStoreError) as caught:
        load_trust_list(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_cscas_from_pem_der_crls_directories_and_master_lists(tmp_path: Path) -> None:
    crl = x509.load_der_x509_crl(make_crl(UTOPIA)).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "ut.pem").write_bytes(UTOPIA.pem + crl)
    (tmp_path / "de.der").write_bytes(PUBLISHER.der)
    master_list = build_master_list(
        [make_csca("FR").certificate, make_csca("NL").certificate],
        make_master_list_signer(PUBLISHER),
    )
    (tmp_path / "icao.ml").write_bytes(master_list)
    (tmp_path / "README.txt").write_text("ignored: not a certificate suffix")
    store = load_csca_store([tmp_path])
    assert len(store) == 4
    assert {c.subject.native["country_name"] for c in store} == {"UT", "DE", "FR", "NL"}
    (utopia,) = [c for c in store if c.subject.native["country_name"] == "UT"]
    assert store.revocations_by(utopia)  # the PEM's CRL came along
    # the master list first on the command line: its anchor still loads before it
    assert len(load_csca_store([tmp_path / "icao.ml", tmp_path / "de.der"])) == 3
    assert len(load_csca_store([])) == 0


def test_unusable_csca_files_name_themselves(tmp_path: Path) -> None:
    master_list = build_master_list([UTOPIA.certificate], make_master_list_signer(PUBLISHER))
    (tmp_path / "icao.ml").write_bytes(master_list)
    (tmp_path / "key.pem").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    (tmp_path / "junk.der").write_bytes(b"\x30\x03\x02\x01\x00")
    (tmp_path / "empty").mkdir()
    cases = {
        tmp_path / "icao.ml": "not issued by a CSCA in the trust store",  # no anchor given
        tmp_path / "key.pem": "no certificate or CRL in this PEM file",
        tmp_path / "junk.der": "neither a DER certificate nor a usable master list",
        tmp_path / "empty": "no CSCA file (.cer, .crt, .der, .ml, .pem) in this directory",
        tmp_path / "missing.pem": "no such file or directory",
    }
    for path, message in cases.items():
        with pytest.raises(TrustStoreError) as caught:
            load_csca_store([path])
        assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)

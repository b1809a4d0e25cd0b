"""A technician provisions a CA, kiosk certificates and the broker config from the command line."""

from __future__ import annotations

import stat

from click.testing import CliRunner
from cryptography import x509

from provisioning.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_issued_kiosk_certificate_names_the_device_and_its_key_is_private(tmp_path):
    pki = str(tmp_path / "pki")
    assert run("pki", "init", "--pki", pki).exit_code == 0
    result = run("pki", "issue", "device", "kiosk-bz-01", "--pki", pki)
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate((tmp_path / "pki/issued/kiosk-bz-01.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=kiosk-bz-01"
    key_mode = stat.S_IMODE((tmp_path / "pki/issued/kiosk-bz-01.key").stat().st_mode)
    assert key_mode == 0o600


def test_a_device_id_that_would_break_topics_is_refused_in_one_line(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    result = run("pki", "issue", "device", "kiosk/+", "--pki", pki)
    assert result.exit_code == 1
    assert result.output == "Error: device id 'kiosk/+' contains '+' (a wildcard)\n"
    assert not (tmp_path / "pki/issued/kiosk/+.crt").exists()


def test_init_refuses_to_replace_an_existing_ca(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    original = (tmp_path / "pki/ca.crt").read_bytes()
    result = run("pki", "init", "--pki", pki)
    assert result.exit_code == 1
    assert "refusing to replace a CA" in result.output
    assert (tmp_path / "pki/ca.crt").read_bytes() == original


def test_issuing_without_a_ca_says_what_is_missing(tmp_path):
    result = run("pki", "issue", "device", "kiosk-1", "--pki", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: no CA in ")
    assert len(result.output.splitlines()) == 1


def test_broker_config_confines_kiosks_with_the_contract_acl(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    run("pki", "issue", "server", "broker", "--host", "localhost", "--pki", pki)
    result = run("broker", "config", "--pki", pki, "--out", str(tmp_path / "broker"))
    assert result.exit_code == 0, result.output
    conf = (tmp_path / "broker/mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf
    acl = (tmp_path / "broker/acl").read_text()
    assert "pattern write borderlane/v1/devices/%u/crossings" in acl


def test_broker_config_without_a_server_certificate_says_so(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    result = run("broker", "config", "--pki", pki, "--out", str(tmp_path / "broker"))
    assert result.exit_code == 1
    assert "no certificate issued for 'broker'" in result.output

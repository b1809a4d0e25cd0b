"""A technician provisions the CAs, kiosk certificates, revocations and the broker config from
the command line."""

from __future__ import annotations

import json
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
    issued = tmp_path / "pki/devices/issued"
    cert = x509.load_pem_x509_certificate((issued / "kiosk-bz-01.crt").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=kiosk-bz-01"
    device_ca = x509.load_pem_x509_certificate((tmp_path / "pki/devices/ca.crt").read_bytes())
    assert cert.issuer == device_ca.subject
    key_mode = stat.S_IMODE((issued / "kiosk-bz-01.key").stat().st_mode)
    assert key_mode == 0o600


def test_a_services_name_is_refused_as_a_device_id(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    result = run("pki", "issue", "device", "console", "--pki", pki)
    assert result.exit_code == 1
    assert result.output == "Error: device id 'console' is reserved for a service\n"


def test_issuing_a_device_again_is_refused_unless_replaced_which_revokes_the_old(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    run("pki", "issue", "device", "kiosk-bz-02", "--pki", pki)
    again = run("pki", "issue", "device", "kiosk-bz-02", "--pki", pki)
    assert again.exit_code == 1 and "--replace" in again.output
    replaced = run("pki", "issue", "device", "kiosk-bz-02", "--replace", "--pki", pki)
    assert replaced.exit_code == 0, replaced.output
    crl = x509.load_pem_x509_crl((tmp_path / "pki/devices/crl.pem").read_bytes())
    assert len(list(crl)) == 1
    revoked = json.loads((tmp_path / "pki/devices/revoked.json").read_text())
    assert [e["reason"] for e in revoked.values()] == ["superseded"]


def test_revoking_a_device_puts_it_on_the_crl_and_out_of_the_broker_config(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    run("pki", "issue", "server", "broker", "--host", "localhost", "--pki", pki)
    for device in ("kiosk-1", "kiosk-2"):
        run("pki", "issue", "device", device, "--pki", pki)
    result = run("pki", "revoke", "kiosk-1", "--reason", "stolen", "--pki", pki)
    assert result.exit_code == 0, result.output
    crl = x509.load_pem_x509_crl((tmp_path / "pki/devices/crl.pem").read_bytes())
    assert len(list(crl)) == 1
    run("broker", "config", "--pki", pki, "--out", str(tmp_path / "broker"))
    rules = json.loads((tmp_path / "broker/dynamic-security.json").read_text())
    assert sorted(c["username"] for c in rules["clients"]) == ["console", "kiosk-2"]


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
    original = (tmp_path / "pki/devices/ca.crt").read_bytes()
    result = run("pki", "init", "--pki", pki)
    assert result.exit_code == 1
    assert "refusing to replace a CA" in result.output
    assert (tmp_path / "pki/devices/ca.crt").read_bytes() == original


def test_issuing_without_a_ca_says_what_is_missing(tmp_path):
    result = run("pki", "issue", "device", "kiosk-1", "--pki", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: no CA in ")
    assert len(result.output.splitlines()) == 1


def test_broker_config_confines_kiosks_with_the_contract_acl(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    run("pki", "issue", "server", "broker", "--host", "localhost", "--pki", pki)
    run("pki", "issue", "device", "kiosk-bz-03", "--pki", pki)
    for key in (tmp_path / "pki").rglob("ca.key"):
        key.unlink()  # the CA keys stay offline: the broker's configuration needs neither
    result = run("broker", "config", "--pki", pki, "--out", str(tmp_path / "broker"))
    assert result.exit_code == 0, result.output
    conf = (tmp_path / "broker/mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "use_username_as_clientid true" in conf
    assert "user mosquitto" in conf and "crlfile" in conf and "allow_anonymous true" not in conf
    rules = json.loads((tmp_path / "broker/dynamic-security.json").read_text())
    (role,) = [r for r in rules["roles"] if r["rolename"] == "device:kiosk-bz-03"]
    assert {
        "acltype": "publishClientSend",
        "topic": "borderlane/v1/devices/kiosk-bz-03/crossings",
        "allow": True,
        "priority": 0,
    } in role["acls"]
    assert rules["defaultACLAccess"]["subscribe"] is False


def test_broker_config_refuses_unsafe_combinations_in_one_line(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    run("pki", "issue", "server", "broker", "--host", "localhost", "--pki", pki)
    out = str(tmp_path / "broker")
    as_root = run("broker", "config", "--pki", pki, "--out", out, "--run-as", "root")
    assert as_root.exit_code == 1
    assert as_root.output == "Error: the broker must not run as root (--run-as)\n"
    plain = run("broker", "config", "--pki", pki, "--out", out, "--plain-port", "1883",
                "--bind", "0.0.0.0")  # fmt: skip
    assert plain.exit_code == 1 and "loopback only" in plain.output


def test_broker_config_without_a_server_certificate_says_so(tmp_path):
    pki = str(tmp_path / "pki")
    run("pki", "init", "--pki", pki)
    result = run("broker", "config", "--pki", pki, "--out", str(tmp_path / "broker"))
    assert result.exit_code == 1
    assert "no certificate issued for 'broker'" in result.output

"""A kiosk enrolls with a one-time token and connects; everything else about the token is refused.

On the real stack: the session's Mosquitto (device and service listeners, dynamic-security
rules), the console's enrollment endpoint over HTTPS, its database (SQLite and PostgreSQL),
the kiosk's ``borderlane-edge enroll`` and a real ingest worker that acks the first crossing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from console.cli import cli as console_cli
from console.enroll_server import EnrollServer
from console.enrollment import EnrollmentError, EnrollmentSettings, create_token, enroll, revoke
from console.store import open_database
from edge.agent.certificates import CertificateKeeper, RenewalSettings
from edge.uplink import Outbox, StaticClock, Uplink, UplinkConfig
from edge.uplink.enroll import EnrollError, check_with_broker, promote, renew
from edge.uplink.enroll import enroll as kiosk_enroll
from harness.console import crossing, rows, running_worker, wait_for_rows
from harness.uplink import crossing_body
from mqtt_schemas import topics
from provisioning.broker import drop_device

POST = "bz-santa-elena"
PUBLIC_KEY = "-----BEGIN PUBLIC KEY-----\nMCowBQ==\n-----END PUBLIC KEY-----\n"
EDGE = Path(sys.executable).parent / "borderlane-edge"


@pytest.fixture
def engine(console_db):
    return open_database(console_db)


@pytest.fixture
def endpoint(broker, engine):
    """The console's enrollment endpoint on a free port, adding kiosks to the broker's rules."""
    tls = broker.pki.services.issue_server("enroll", hosts=["127.0.0.1", "localhost"])
    settings = EnrollmentSettings(
        device_ca=broker.pki.devices,
        broker_host=broker.host,
        broker_port=broker.tls_port,
        broker_ca_pem=broker.ca.cert_path.read_text(),
        watchlist_keys={
            "wl-2026": "-----BEGIN PUBLIC KEY-----\nMCowBQ==\n-----END PUBLIC KEY-----\n"
        },
    )

    def register(device_id: str) -> None:
        with broker.access_rules() as rules:
            rules.add_device(device_id)

    server = EnrollServer(
        engine, settings, ("127.0.0.1", 0), tls.cert_path, tls.key_path, register=register
    )
    server.start()
    yield server, settings
    server.close()


def url(server) -> str:
    return f"https://127.0.0.1:{server.port}"


def csr_for(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def audit_actions(engine) -> list[tuple[str, str]]:
    return [
        (r["username"], r["action"]) for r in rows(engine, "SELECT * FROM audit_log ORDER BY seq")
    ]


@pytest.mark.asyncio
async def test_a_kiosk_enrolls_with_its_token_connects_and_its_first_crossing_is_acked(
    broker, endpoint, engine, console_db, tmp_path
):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-1", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    result = subprocess.run(
        [str(EDGE), "enroll", "--console", url(server), "--token", token,
         "--state-dir", str(state), "--ca", str(broker.ca.cert_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "enrolled kiosk-enr-1 at bz-santa-elena" in result.stdout
    assert stat.S_IMODE((state / "kiosk.key").stat().st_mode) == 0o600
    facts = json.loads((state / "enrollment.json").read_text())
    assert facts == {"device_id": "kiosk-enr-1", "post": POST,
                     "broker": {"host": broker.host, "port": broker.tls_port}}  # fmt: skip
    assert (state / "watchlist-keys" / "wl-2026.pub.pem").exists()
    certificate = x509.load_pem_x509_certificate((state / "kiosk.crt").read_bytes())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime < dt.timedelta(days=30)  # weeks, not years

    record = crossing("kiosk-enr-1", 1)
    tls = aiomqtt.TLSParameters(
        ca_certs=str(state / "ca.crt"),
        certfile=str(state / "kiosk.crt"),
        keyfile=str(state / "kiosk.key"),
    )
    async with (
        running_worker(broker, console_db),
        aiomqtt.Client(
            facts["broker"]["host"],
            facts["broker"]["port"],
            identifier="x",
            tls_params=tls,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as kiosk,  # fmt: skip
    ):
        await kiosk.subscribe(topics.device_topic("kiosk-enr-1", "acks"), qos=1)
        await kiosk.publish(
            topics.device_topic("kiosk-enr-1", "crossings"), json.dumps(record), qos=1
        )
        async with asyncio.timeout(10):
            async for message in kiosk.messages:
                if record["id"] in json.loads(message.payload)["acked"]:
                    break
    assert ("kiosk:kiosk-enr-1", "device.enroll") in audit_actions(engine)
    assert ("ada", "device.token") in audit_actions(engine)


def test_a_token_is_single_use(broker, endpoint, engine, tmp_path):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-2", POST, ttl_s=3600, created_by="ada")
    kiosk_enroll(url(server), token, tmp_path / "a", ca_file=broker.ca.cert_path)
    with pytest.raises(EnrollError) as refused:
        kiosk_enroll(url(server), token, tmp_path / "b", ca_file=broker.ca.cert_path)
    assert (refused.value.step, refused.value.reason) == ("token", "this token was used already")


def test_an_expired_or_unknown_token_is_refused(broker, endpoint, engine, tmp_path):
    server, _ = endpoint
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token = create_token(engine, "kiosk-enr-3", POST, ttl_s=3600, created_by="ada", now=past)
    with pytest.raises(EnrollError, match="token: the token expired at"):
        kiosk_enroll(url(server), token, tmp_path / "a", ca_file=broker.ca.cert_path)
    with pytest.raises(EnrollError, match="token: unknown token"):
        kiosk_enroll(
            url(server), "kiosk-enr-3:guessed", tmp_path / "b", ca_file=broker.ca.cert_path
        )


def test_a_request_for_another_device_a_bad_clock_or_a_garbled_csr_is_refused(engine, endpoint):
    _, settings = endpoint
    token = create_token(engine, "kiosk-enr-4", POST, ttl_s=3600, created_by="ada")

    def attempt(**changes):
        request = {"token": token, "csr": csr_for("kiosk-enr-4"), "time": now_iso(), **changes}
        with pytest.raises(EnrollmentError) as refused:
            enroll(engine, settings, request, register=lambda d: None)
        return refused.value.step, refused.value.reason

    assert attempt(csr=csr_for("kiosk-enr-5")) == (
        "device",
        "the request names 'kiosk-enr-5', the token is for 'kiosk-enr-4'",
    )
    skewed = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat()
    assert attempt(time=skewed)[0] == "clock"
    assert attempt(csr="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")[0] == "csr"
    assert attempt(extra="x")[0] == "request"
    refusals = [r for r in rows(engine, "SELECT * FROM audit_log") if "false" in r["query"]]
    assert len(refusals) == 4  # every refusal is audited
    # The token survived all of that: the right request still enrolls.
    answer = enroll(engine, settings, {"token": token, "csr": csr_for("kiosk-enr-4"),
                                       "time": now_iso()}, register=lambda d: None)  # fmt: skip
    assert answer["device_id"] == "kiosk-enr-4"


def test_a_service_name_gets_no_token_and_an_enrolled_device_needs_replace(engine, endpoint):
    _, settings = endpoint
    with pytest.raises(EnrollmentError, match="reserved for a service"):
        create_token(engine, "console", POST, ttl_s=3600, created_by="mallory")
    token = create_token(engine, "kiosk-enr-6", POST, ttl_s=3600, created_by="ada")
    enroll(engine, settings, {"token": token, "csr": csr_for("kiosk-enr-6"), "time": now_iso()},
           register=lambda d: None)  # fmt: skip
    with pytest.raises(EnrollmentError, match="enrolled already"):
        create_token(engine, "kiosk-enr-6", POST, ttl_s=3600, created_by="ada")
    again = create_token(engine, "kiosk-enr-6", POST, ttl_s=3600, created_by="ada", replace=True)
    revoked = []
    enroll(engine, settings, {"token": again, "csr": csr_for("kiosk-enr-6"), "time": now_iso()},
           register=lambda d: None, revoke_old=lambda d, r: revoked.append((d, r)))  # fmt: skip
    assert revoked == [("kiosk-enr-6", "superseded")]


@pytest.mark.asyncio
async def test_a_revoked_enrolled_kiosk_is_dropped_and_refused(broker, endpoint, engine, tmp_path):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-7", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    kiosk_enroll(url(server), token, state, ca_file=broker.ca.cert_path)

    def disconnect(device: str) -> None:
        with broker.access_rules() as rules:
            drop_device(device, reload=broker.process.reload, rules=rules)

    count = await asyncio.to_thread(
        revoke, engine, broker.pki.devices, "kiosk-enr-7", "stolen", actor="ada",
        disconnect=disconnect,
    )  # fmt: skip
    assert count == 1
    context = ssl.create_default_context(cafile=str(state / "ca.crt"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(state / "kiosk.crt", state / "kiosk.key")
    with pytest.raises(ssl.SSLError, match=r"CERTIFICATE_REVOKED|certificate revoked"):
        import socket

        raw = socket.create_connection((broker.host, broker.tls_port), timeout=5)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(bytes.fromhex("101300044d5154540402003c0007") + b"revoked")
            tls.recv(4)
    assert rows(engine, "SELECT reason FROM device_certificates WHERE device_id = ?",
                "kiosk-enr-7")[0]["reason"] == "stolen"  # fmt: skip


def test_the_console_cli_makes_a_token_and_refuses_a_service_name_in_one_line(engine, console_db):
    runner = CliRunner()
    arguments = ["devices", "token", "kiosk-enr-8", "--post", POST, "--ttl", "2h", "--by", "ada"]
    made = runner.invoke(console_cli, [*arguments, "--db", console_db])
    assert made.exit_code == 0, made.output
    assert made.stdout.splitlines()[0].startswith("kiosk-enr-8:")
    refused = runner.invoke(console_cli, ["devices", "token", "broker", "--post", POST,
                                          "--by", "ada", "--db", console_db])  # fmt: skip
    assert refused.exit_code == 1
    assert refused.output == "Error: token: device id 'broker' is reserved for a service\n"


@pytest.mark.asyncio
async def test_a_record_of_a_revoked_kiosk_still_in_flight_is_quarantined_not_stored(
    broker, endpoint, engine, console_db, tmp_path
):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-9", POST, ttl_s=3600, created_by="ada")
    kiosk_enroll(url(server), token, tmp_path / "etc", ca_file=broker.ca.cert_path)
    await asyncio.to_thread(
        revoke, engine, broker.pki.devices, "kiosk-enr-9", "stolen", actor="ada",
        disconnect=lambda device: None,
    )  # fmt: skip
    late = crossing("kiosk-enr-9", 1)
    on_time = crossing("kiosk-enr-10", 1)
    async with running_worker(broker, console_db), broker.observer() as relay:
        # What the broker still delivers after the kiosk was dropped (relayed here as it would).
        await relay.publish(topics.device_topic("kiosk-enr-9", "crossings"), json.dumps(late), 1)
        await relay.publish(
            topics.device_topic("kiosk-enr-10", "crossings"), json.dumps(on_time), 1
        )
        await wait_for_rows(console_db, "SELECT id FROM crossings", 1)
        await wait_for_rows(console_db, "SELECT id FROM quarantine", 1)
    assert [r["id"] for r in rows(console_db, "SELECT id FROM crossings")] == [on_time["id"]]
    (kept,) = rows(console_db, "SELECT device_id, reason FROM quarantine")
    assert kept["device_id"] == "kiosk-enr-9"
    assert kept["reason"].startswith("device: kiosk-enr-9's certificate was revoked at ")


def test_an_enrolled_kiosk_renews_with_its_current_certificate_and_switches_once_it_works(
    broker, endpoint, engine, tmp_path
):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-11", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    kiosk_enroll(url(server), token, state, ca_file=broker.ca.cert_path)
    old = (state / "kiosk.crt").read_bytes()
    cert, key = state / "kiosk.crt", state / "kiosk.key"
    fresh = renew(url(server), cert, key, ca_file=broker.ca.cert_path)
    assert (state / "kiosk.crt").read_bytes() == old  # still in use until the new one works
    next_key = state / "kiosk.key.next"
    check_with_broker(broker.host, broker.tls_port, state / "ca.crt", fresh, next_key)
    assert promote(cert, key)
    assert (state / "kiosk.crt.prev").read_bytes() == old
    new = x509.load_pem_x509_certificate((state / "kiosk.crt").read_bytes())
    assert new.serial_number != x509.load_pem_x509_certificate(old).serial_number
    check_with_broker(broker.host, broker.tls_port, state / "ca.crt", state / "kiosk.crt",
                      state / "kiosk.key")  # fmt: skip
    assert ("kiosk:kiosk-enr-11", "device.renew") in audit_actions(engine)


def test_renewal_is_refused_without_a_valid_enrolled_certificate(
    broker, endpoint, engine, tmp_path
):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-12", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    kiosk_enroll(url(server), token, state, ca_file=broker.ca.cert_path)
    revoke(engine, broker.pki.devices, "kiosk-enr-12", "stolen", actor="ada",
           disconnect=lambda device: None)  # fmt: skip
    with pytest.raises(EnrollError, match=r"^certificate: revoked at "):
        renew(url(server), state / "kiosk.crt", state / "kiosk.key", ca_file=broker.ca.cert_path)
    # A certificate issued outside enrollment (by the offline provisioning tool) cannot renew.
    offline = broker.identity("kiosk-offline-1")
    with pytest.raises(EnrollError, match="not one this console enrolled"):
        renew(url(server), offline.cert_path, offline.key_path, ca_file=broker.ca.cert_path)


def test_the_agent_renews_at_two_thirds_of_the_lifetime_and_its_health_warns_before_expiry(
    broker, endpoint, engine, tmp_path
):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-13", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    kiosk_enroll(url(server), token, state, ca_file=broker.ca.cert_path)
    issued = x509.load_pem_x509_certificate((state / "kiosk.crt").read_bytes())
    start, end = issued.not_valid_before_utc, issued.not_valid_after_utc
    moment = [start + (end - start) * 0.5]
    keeper = CertificateKeeper(
        state / "kiosk.crt",
        state / "kiosk.key",
        (broker.host, broker.tls_port, state / "ca.crt"),
        RenewalSettings(url=url(server), ca_file=broker.ca.cert_path),
        clock=lambda: moment[0],
    )
    assert not keeper.due() and keeper.component()["state"] == "ok"
    moment[0] = start + (end - start) * 0.7
    assert keeper.due()
    keeper.renew_now()
    renewed = x509.load_pem_x509_certificate((state / "kiosk.crt").read_bytes())
    assert renewed.serial_number != issued.serial_number
    # The health entry, against the renewed certificate: alarm within 7 days, down once expired.
    end = renewed.not_valid_after_utc
    for offset, state_expected in ((dt.timedelta(days=10), "ok"), (dt.timedelta(days=3), "down"),
                                   (dt.timedelta(seconds=-1), "down")):  # fmt: skip
        moment[0] = end - offset
        keeper.last_error = None
        assert keeper.component()["state"] == state_expected, offset
    moment[0] = end - dt.timedelta(days=8)  # due (past two thirds), not yet within the alarm
    keeper.last_error = "connect: the console is unreachable"
    entry = keeper.component()
    assert entry["state"] == "degraded" and "renewal failing" in entry["detail"]


def test_a_kiosk_whose_certificate_ran_out_offline_enrolls_again_and_keeps_what_it_recorded(
    broker, endpoint, engine, tmp_path
):
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-14", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    kiosk_enroll(url(server), token, state, ca_file=broker.ca.cert_path)
    with Outbox(state / "kiosk.db", "kiosk-enr-14", StaticClock()) as outbox:
        outbox.enqueue("crossings", crossing_body())  # recorded while offline
    first = (state / "kiosk.crt").read_bytes()
    with engine.begin() as conn:  # weeks later: the certificate has run out
        conn.execute(text("UPDATE device_certificates SET not_after = '2026-01-01T00:00:00.000Z' "
                          "WHERE device_id = 'kiosk-enr-14'"))  # fmt: skip
    again = create_token(engine, "kiosk-enr-14", POST, ttl_s=3600, created_by="ada")  # no replace
    kiosk_enroll(url(server), again, state, ca_file=broker.ca.cert_path)
    assert (state / "kiosk.crt").read_bytes() != first
    with Outbox(state / "kiosk.db", "kiosk-enr-14", StaticClock()) as outbox:
        assert outbox.stats().depth == 1  # nothing it recorded is lost


@pytest.mark.asyncio
async def test_a_renewal_under_traffic_loses_no_record(
    broker, endpoint, engine, console_db, tmp_path
):
    """The kiosk records and sends throughout; its certificate is renewed and put in place, the
    broker drops its session (as any reconnect would), and the uplink comes back with the new
    certificate: every record stored once."""
    server, _ = endpoint
    token = create_token(engine, "kiosk-enr-15", POST, ttl_s=3600, created_by="ada")
    state = tmp_path / "etc"
    facts = kiosk_enroll(url(server), token, state, ca_file=broker.ca.cert_path)
    config = UplinkConfig.from_dict({
        "device_id": "kiosk-enr-15", "agent_version": "0.1.0+test",
        "broker": {"host": facts.broker_host, "port": facts.broker_port,
                   "ca_file": str(state / "ca.crt"), "cert_file": str(state / "kiosk.crt"),
                   "key_file": str(state / "kiosk.key"), "keepalive_s": 5,
                   "connect_timeout_s": 3},
        "backoff": {"initial_s": 0.05, "max_s": 0.4},
    })  # fmt: skip
    keeper = CertificateKeeper(
        state / "kiosk.crt",
        state / "kiosk.key",
        (broker.host, broker.tls_port, state / "ca.crt"),
        RenewalSettings(url=url(server), ca_file=broker.ca.cert_path),
    )
    old = (state / "kiosk.crt").read_bytes()
    clock = StaticClock()
    with Outbox(state / "kiosk.db", "kiosk-enr-15", clock) as outbox:
        async with running_worker(broker, console_db), Uplink(config, outbox, clock) as uplink:
            runner = asyncio.create_task(uplink.run())
            await uplink.wait_connected(10)
            for number in range(40):
                outbox.enqueue("crossings", crossing_body(number))
                if number == 15:
                    await asyncio.to_thread(keeper.renew_now)
                    with broker.access_rules() as rules:  # kicks the session; rules kept
                        rules.add_device("kiosk-enr-15")
                await asyncio.sleep(0.05)
            async with asyncio.timeout(20):
                while outbox.stats().depth:
                    await asyncio.sleep(0.1)
            assert uplink.status().session >= 2  # it came back after the renewal
            await uplink.stop()
            await runner
    assert (state / "kiosk.crt").read_bytes() != old
    found = rows(console_db, "SELECT id FROM crossings WHERE device_id = ?", "kiosk-enr-15")
    assert len(found) == 40 == len({row["id"] for row in found})

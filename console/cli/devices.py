"""``borderlane-console devices``: enrollment tokens, the enrollment endpoint, revocation.

A thin layer over :mod:`console.enrollment` and :mod:`console.enroll_server`; the broker's
access rules are changed through its dynamic-security plugin as the console's service identity
(:class:`provisioning.broker.DynamicSecurity`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy import select

from provisioning.broker import BrokerError, DynamicSecurity, drop_device, reload_broker
from provisioning.pki import CertificateAuthority, PkiError

from .. import commands
from ..connection import Endpoint
from ..enroll_server import EnrollServer
from ..enrollment import EnrollmentError, EnrollmentSettings, create_token, revoke
from ..store import StoreError
from ..store.schema import devices
from .options import (
    BadOption,
    broker_options,
    configure_logging,
    db_option,
    existing_database,
    one_line_errors,
)

FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

DEVICE_CA = click.option(
    "--device-ca",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="The device CA's directory (ca.crt, ca.key, crl.pem): PKI/devices.",
)


def _duration(value: str) -> float:
    found = _DURATION.match(value.strip())
    if not found:
        raise BadOption("--ttl: a duration such as 30m, 24h or 2d")
    return int(found[1]) * _UNIT[found[2]]


def _address(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadOption(f"{option}: HOST:PORT")
    return host, int(port)


def _rules(endpoint: Endpoint) -> DynamicSecurity:
    return DynamicSecurity(
        endpoint.host,
        endpoint.port,
        endpoint.ca_file,
        endpoint.cert_file,
        endpoint.key_file,
        client_id=f"console:devices-{threading.get_ident()}",
    )


def _device_ca(directory: Path) -> CertificateAuthority:
    try:
        return CertificateAuthority.load(directory)
    except PkiError as exc:
        raise click.ClickException(str(exc)) from None


def _disconnector(endpoint: Endpoint, broker_pid_file: Path) -> Callable[[str], None]:
    """What a revocation calls once the CRL is written: the broker re-reads it, and the
    kiosk is removed from its rules (which disconnects it)."""

    def disconnect(device: str) -> None:
        with _rules(endpoint) as rules:
            drop_device(device, reload=lambda: reload_broker(broker_pid_file), rules=rules)

    return disconnect


BROKER_PID_FILE = click.option(
    "--broker-pid-file",
    type=FILE,
    required=True,
    help="The broker's pid file: it re-reads the CRL on SIGHUP (nobody else is disconnected).",
)


@click.group("devices")
def devices_group() -> None:
    """Kiosks' lifecycle: a one-time enrollment token, the enrollment endpoint, revocation.

    \b
    Examples:
      borderlane-console devices token kiosk-bz-07 --post bz-santa-elena --ttl 24h \\
          --db console.db --by ada
      borderlane-console devices serve-enrollment --db console.db --device-ca pki/devices \\
          --bind 0.0.0.0:8443 --tls-cert enroll.crt --tls-key enroll.key \\
          --kiosk-broker mqtt.example.bz:8883 --broker-ca pki/services/ca.crt \\
          --broker 127.0.0.1:8884 --cafile pki/services/ca.crt --cert console.crt --key console.key
      borderlane-console devices revoke kiosk-bz-07 --reason stolen --db console.db \\
          --device-ca pki/devices --broker-pid-file broker/mosquitto.pid \\
          --broker 127.0.0.1:8884 --cafile pki/services/ca.crt --cert console.crt --key console.key
    """


@devices_group.command("token")
@click.argument("device_id")
@click.option("--post", required=True, help="The post (site id) the kiosk serves.")
@click.option("--ttl", default="24h", show_default=True, help="How long the token is valid.")
@click.option("--by", "created_by", required=True, help="Who makes it (for the audit log).")
@click.option("--replace", is_flag=True, help="The device is enrolled: replace it (revokes).")
@db_option("must exist")
@one_line_errors(EnrollmentError, StoreError)
def token_command(
    device_id: str, post: str, ttl: str, created_by: str, replace: bool, db: str
) -> None:
    """Make a one-time enrollment token for DEVICE_ID at --post; print it (once: only its hash
    is kept) and the kiosk's enroll command.

    \b
    Example:
      borderlane-console devices token kiosk-bz-07 --post bz-santa-elena --ttl 24h \\
          --db console.db --by ada
    """
    seconds = _duration(ttl)
    token = create_token(
        existing_database(db),
        device_id,
        post,
        ttl_s=seconds,
        created_by=created_by,
        replace=replace,
    )
    click.echo(token)
    click.echo(
        f"# at the kiosk: borderlane-edge enroll --console https://CONSOLE:8443 --token {token} "
        "--state-dir /etc/borderlane --ca /etc/borderlane/service-ca.crt",
        err=True,
    )


@devices_group.command("serve-enrollment")
@db_option("must exist")
@DEVICE_CA
@click.option("--bind", default="0.0.0.0:8443", show_default=True, help="HOST:PORT to serve.")
@click.option(
    "--tls-cert",
    type=FILE,
    required=True,
    help="This endpoint's TLS certificate (from the service CA).",
)
@click.option("--tls-key", type=FILE, required=True, help="Its private key.")
@click.option("--kiosk-broker", required=True, help="HOST:PORT of the broker's kiosk listener.")
@click.option(
    "--broker-ca",
    type=FILE,
    required=True,
    help="The CA kiosks recognise the broker by (the service CA).",
)
@click.option(
    "--watchlist-keys",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Directory of <key id>.pub.pem watchlist signing keys to hand out.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=28,
    show_default=True,
    help="Lifetime of a kiosk's certificate.",
)
@broker_options(node_id_use="unused", node_id_suffix="-enroll")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@one_line_errors(EnrollmentError, StoreError, BrokerError)
def serve_command(
    db: str,
    device_ca: Path,
    bind: str,
    tls_cert: Path,
    tls_key: Path,
    kiosk_broker: str,
    broker_ca: Path,
    watchlist_keys: Path | None,
    days: int,
    endpoint: Endpoint,
    node_id: str,
    verbose: bool,
) -> None:
    """Serve POST /enroll over TLS until SIGINT/SIGTERM: kiosks enroll with their token."""
    configure_logging(verbose)
    host, port = _address(kiosk_broker, "--kiosk-broker")
    keys = {}
    if watchlist_keys is not None:
        keys = {
            p.name.removesuffix(".pub.pem"): p.read_text() for p in watchlist_keys.glob("*.pub.pem")
        }
    settings = EnrollmentSettings(
        device_ca=_device_ca(device_ca),
        broker_host=host,
        broker_port=port,
        broker_ca_pem=broker_ca.read_text(),
        watchlist_keys=keys,
        certificate_days=days,
    )

    def register(device_id: str) -> None:
        with _rules(endpoint) as rules:
            rules.add_device(device_id)

    server = EnrollServer(
        existing_database(db),
        settings,
        _address(bind, "--bind"),
        tls_cert,
        tls_key,
        register=register,
        revoke_old=lambda device, reason: settings.device_ca.revoke(device, reason),
    )
    click.echo(f"serving enrollment on https://{bind}/enroll", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@devices_group.command("revoke")
@click.argument("device_id")
@click.option("--reason", required=True, help="Why: stolen, decommissioned, compromised ...")
@click.option("--by", "actor", required=True, help="Who revokes (for the audit log).")
@db_option("must exist")
@DEVICE_CA
@BROKER_PID_FILE
@broker_options(node_id_use="unused", node_id_suffix="-devices")
@one_line_errors(EnrollmentError, StoreError, BrokerError)
def revoke_command(
    device_id: str,
    reason: str,
    actor: str,
    db: str,
    device_ca: Path,
    broker_pid_file: Path,
    endpoint: Endpoint,
    node_id: str,
) -> None:
    """Revoke DEVICE_ID: its certificates go on the CRL, the broker re-reads it, and the kiosk
    is dropped at once; its reconnection fails the TLS handshake.

    \b
    Example:
      borderlane-console devices revoke kiosk-bz-07 --reason stolen --by ada --db console.db \\
          --device-ca pki/devices --broker-pid-file broker/mosquitto.pid \\
          --broker 127.0.0.1:8884 --cafile pki/services/ca.crt --cert console.crt --key console.key
    """

    disconnect = _disconnector(endpoint, broker_pid_file)

    count = revoke(
        existing_database(db),
        _device_ca(device_ca),
        device_id,
        reason,
        actor=actor,
        disconnect=disconnect,
    )
    click.echo(f"revoked {device_id} ({count} certificate(s) on record): refused and disconnected")


@devices_group.command("decommission")
@click.argument("device_id")
@click.option("--by", "actor", required=True, help="Who decommissions (for the audit log).")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(0, 86400),
    default=600,
    show_default=True,
    help="Seconds the kiosk may take to deliver what it still holds.",
)
@db_option("must exist: ingest stores the kiosk's last message there")
@DEVICE_CA
@BROKER_PID_FILE
@broker_options(node_id_use="stamped on the command", node_id_suffix="-devices")
@one_line_errors(EnrollmentError, StoreError, BrokerError)
def decommission_command(
    device_id: str,
    actor: str,
    wait_s: float,
    db: str,
    device_ca: Path,
    broker_pid_file: Path,
    endpoint: Endpoint,
    node_id: str,
) -> None:
    """Take DEVICE_ID out of service for good: tell it to deliver everything, erase its data
    and key and stop (its last message says so), then revoke it. A kiosk that does not answer
    is revoked anyway (its data then stays on it: say so to whoever collects it).

    \b
    Example:
      borderlane-console devices decommission kiosk-bz-07 --by ada --db console.db \
          --device-ca pki/devices --broker-pid-file broker/mosquitto.pid \
          --broker 127.0.0.1:8884 --cafile pki/services/ca.crt --cert console.crt --key console.key
    """
    engine = existing_database(db)
    settings = commands.CommandSettings(endpoint, node_id=node_id)
    try:
        answer = asyncio.run(
            commands.send_command(settings, device_id, "decommission", {"wait_s": wait_s})
        )
    except commands.NoAnswer:
        answer = None
    erased = False
    if answer is not None and answer.get("status") == "ok":
        click.echo(f"{device_id} is delivering what it holds, then erasing and stopping")
        deadline = time.monotonic() + wait_s + 30
        while time.monotonic() < deadline and not erased:
            with engine.connect() as conn:
                reason = conn.execute(
                    select(devices.c.offline_reason).where(devices.c.device_id == device_id)
                ).scalar()
            erased = reason == "decommissioned"
            time.sleep(0.5)

    disconnect = _disconnector(endpoint, broker_pid_file)

    revoke(engine, _device_ca(device_ca), device_id, "decommissioned", actor=actor,
           disconnect=disconnect)  # fmt: skip
    if erased:
        click.echo(f"decommissioned {device_id}: its data and key erased, its certificate revoked")
    else:
        click.echo(
            f"revoked {device_id}, but it did not confirm erasing its data: "
            "whoever collects it must wipe it"
        )

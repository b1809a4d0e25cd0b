"""``borderlane-provision``: certificates for kiosks, the console and the broker; broker config.

A thin layer over :mod:`provisioning.pki` and :mod:`provisioning.broker`.
"""

from __future__ import annotations

from pathlib import Path

import click

from mqtt_schemas import TopicError
from mqtt_schemas.cli_pipes import PipeSafeGroup

from .broker import (
    BrokerConfig,
    BrokerError,
    DynamicSecurity,
    reload_broker,
    revoke_device,
    write_config,
)
from .pki import DEFAULT_DAYS, Pki, PkiError, current_devices, public_identity

PKI_DIR = click.option(
    "--pki",
    "pki_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("pki"),
    show_default=True,
    help="Directory of the certificate authority.",
)


@click.group(cls=PipeSafeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="borderlane", prog_name="borderlane-provision")
def cli() -> None:
    """Provision Borderlane: the device and service CAs, certificates, revocation, and the
    broker's TLS and access configuration.

    \b
    Examples:
      borderlane-provision pki init --pki /etc/borderlane/pki
      borderlane-provision pki issue device kiosk-bz-01 --pki /etc/borderlane/pki
      borderlane-provision pki issue console console --pki /etc/borderlane/pki
      borderlane-provision pki issue server broker --host mqtt.example.bz --pki /etc/borderlane/pki
      borderlane-provision broker config --pki /etc/borderlane/pki --out /etc/mosquitto/bl
      borderlane-provision pki revoke kiosk-bz-01 --reason stolen --broker-dir /etc/mosquitto/bl
    """


@cli.group()
def pki() -> None:
    """The certificate authorities and the certificates they issue."""


@pki.command("init")
@PKI_DIR
@click.option("--name", default="Borderlane", show_default=True, help="Deployment name.")
def pki_init(pki_dir: Path, name: str) -> None:
    """Create the device CA and the service CA (refuses to replace existing ones).

    \b
    Example:
      borderlane-provision pki init --pki pki --name "Belize Border Lanes"
    """
    try:
        created = Pki.create(pki_dir, name)
    except PkiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {created.devices.cert_path} and {created.services.cert_path}")


@pki.command("issue")
@click.argument("kind", type=click.Choice(["device", "console", "server"]))
@click.argument("name")
@click.option(
    "--host", "hosts", multiple=True, help="Server certificates: DNS name or IP (repeat)."
)
@click.option(
    "--replace", is_flag=True, help="Devices: issue again, revoking the certificate it had."
)
@click.option(
    "--days", type=click.IntRange(1, 3650), default=DEFAULT_DAYS, show_default=True,
    help="Lifetime of the certificate.",
)  # fmt: skip
@PKI_DIR
def pki_issue(
    kind: str, name: str, hosts: tuple[str, ...], replace: bool, days: int, pki_dir: Path
) -> None:
    """Issue a certificate: a kiosk's from the device CA (NAME is its device id), the
    console's or a server's from the service CA.

    The certificate and its key (mode 0600) go to PKI/devices/issued/NAME.crt and NAME.key
    (services: PKI/services/issued/). A device id that is a service's name (console, broker
    ...) is refused; a device issued before needs --replace, which revokes its old certificate.

    \b
    Examples:
      borderlane-provision pki issue device kiosk-bz-01
      borderlane-provision pki issue device kiosk-bz-01 --replace
      borderlane-provision pki issue console console
      borderlane-provision pki issue server broker --host localhost --host 127.0.0.1
    """
    if hosts and kind != "server":
        raise click.UsageError("--host applies to server certificates only")
    if replace and kind != "device":
        raise click.UsageError("--replace applies to device certificates only")
    try:
        authorities = Pki.load(pki_dir)
        if kind == "server":
            identity = authorities.services.issue_server(name, list(hosts), days)
        elif kind == "console":
            identity = authorities.services.issue_service_client(name, days)
        else:
            identity = authorities.devices.issue_client(name, days, replace=replace)
    except (PkiError, TopicError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"issued {kind} certificate {identity.cert_path} (key {identity.key_path})")


@pki.command("revoke")
@click.argument("device_id")
@click.option("--reason", required=True, help="Why (stolen, decommissioned, compromised ...).")
@click.option(
    "--broker-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The running broker's directory: it re-reads the CRL, and the kiosk is disconnected.",
)
@click.option(
    "--broker", "address", default="127.0.0.1:8884", show_default=True,
    help="The broker's service listener (HOST:PORT), to disconnect the kiosk.",
)  # fmt: skip
@click.option(
    "--as", "console_name", default="console", show_default=True,
    help="The service identity (issued from this PKI) that talks to the broker.",
)  # fmt: skip
@PKI_DIR
def pki_revoke(
    device_id: str,
    reason: str,
    broker_dir: Path | None,
    address: str,
    console_name: str,
    pki_dir: Path,
) -> None:
    """Revoke a kiosk's certificate and rewrite the CRL; with --broker-dir, the running broker
    re-reads it (SIGHUP: nobody else is disconnected) and the kiosk is dropped at once.

    \b
    Examples:
      borderlane-provision pki revoke kiosk-bz-07 --reason stolen
      borderlane-provision pki revoke kiosk-bz-07 --reason stolen --broker-dir /etc/mosquitto/bl
    """
    try:
        authorities = Pki.load(pki_dir)
        if broker_dir is None:
            serial = authorities.devices.revoke(device_id, reason)
            click.echo(f"revoked {device_id} (serial {serial:x}); reload the broker to apply")
            return
        host, _, port = address.rpartition(":")
        console = authorities.services.identity(console_name)
        rules = DynamicSecurity(
            host, int(port), authorities.services.cert_path, console.cert_path, console.key_path
        )
        with rules:
            serial = revoke_device(
                authorities.devices,
                device_id,
                reason,
                reload=lambda: reload_broker(broker_dir / "mosquitto.pid"),
                rules=rules,
            )
    except (PkiError, BrokerError, TopicError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"revoked {device_id} (serial {serial:x}): refused and disconnected")


@cli.group()
def broker() -> None:
    """Mosquitto configuration."""


@broker.command("config")
@PKI_DIR
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for mosquitto.conf, the access rules, log and persistence.",
)
@click.option(
    "--tls-port", type=click.IntRange(1, 65535), default=8883, show_default=True,
    help="The kiosks' listener.",
)  # fmt: skip
@click.option(
    "--service-port", type=click.IntRange(1, 65535), default=8884, show_default=True,
    help="The console's listener.",
)  # fmt: skip
@click.option("--plain-port", type=click.IntRange(1, 65535), help="Loopback-only plain listener.")
@click.option("--bind", "bind_address", default="127.0.0.1", show_default=True)
@click.option(
    "--server-name",
    default="broker",
    show_default=True,
    help="Name the broker's certificate was issued under.",
)
@click.option(
    "--console-identity",
    "consoles",
    multiple=True,
    default=["console"],
    show_default=True,
    help="Service certificate name allowed the whole topic tree (repeat).",
)
@click.option("--run-as", default="mosquitto", show_default=True, help="User the broker drops to.")
def broker_config(
    pki_dir: Path,
    out: Path,
    tls_port: int,
    service_port: int,
    plain_port: int | None,
    bind_address: str,
    server_name: str,
    consoles: tuple[str, ...],
    run_as: str,
) -> None:
    """Write mosquitto.conf and the access rules derived from the wire contract: every kiosk
    issued (and not revoked) gets its own role. Needs no CA private key.

    \b
    Example:
      borderlane-provision broker config --pki pki --out broker --bind 0.0.0.0
      mosquitto -c broker/mosquitto.conf
    """
    if run_as == "root":
        raise click.ClickException("the broker must not run as root (--run-as)")
    if plain_port is not None and bind_address not in ("127.0.0.1", "localhost"):
        raise click.ClickException("a plain (no TLS) listener is for loopback only (--bind)")
    devices_dir, services_dir = pki_dir / "devices", pki_dir / "services"
    try:
        server = public_identity(services_dir, server_name)
        for ca in (devices_dir / "ca.crt", services_dir / "ca.crt"):
            if not ca.exists():
                raise PkiError(f"no CA in {ca.parent}: {ca} is missing")
        config = BrokerConfig(
            directory=out.resolve(),
            tls_port=tls_port,
            service_port=service_port,
            plain_port=plain_port,
            bind_address=bind_address,
            ca_file=(devices_dir / "ca.crt").resolve(),
            service_ca_file=(services_dir / "ca.crt").resolve(),
            crl_file=(devices_dir / "crl.pem").resolve(),
            cert_file=server.cert_path.resolve(),
            key_file=server.key_path.resolve(),
            console_identities=consoles,
            devices=current_devices(devices_dir),
            run_as=run_as,
        )
        path = write_config(config)
    except (PkiError, BrokerError, TopicError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path} and {config.dynsec_file}")


def main() -> None:
    cli(prog_name="borderlane-provision")

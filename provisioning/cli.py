"""``borderlane-provision``: certificates for kiosks, the console and the broker; broker config.

A thin layer over :mod:`provisioning.pki` and :mod:`provisioning.broker`.
"""

from __future__ import annotations

from pathlib import Path

import click

from mqtt_schemas import TopicError

from .broker import BrokerConfig, write_config
from .pki import CertificateAuthority, PkiError

PKI_DIR = click.option(
    "--pki",
    "pki_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("pki"),
    show_default=True,
    help="Directory of the certificate authority.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="borderlane", prog_name="borderlane-provision")
def cli() -> None:
    """Provision Borderlane: device certificates and the broker's TLS and ACL configuration.

    \b
    Examples:
      borderlane-provision pki init --pki /etc/borderlane/pki
      borderlane-provision pki issue device kiosk-bz-01 --pki /etc/borderlane/pki
      borderlane-provision pki issue server broker --host mqtt.example.bz --pki /etc/borderlane/pki
      borderlane-provision broker config --pki /etc/borderlane/pki --out /etc/mosquitto/conf.d/bl
    """


@cli.group()
def pki() -> None:
    """The certificate authority and the certificates it issues."""


@pki.command("init")
@PKI_DIR
@click.option("--name", default="Borderlane CA", show_default=True, help="CA common name.")
def pki_init(pki_dir: Path, name: str) -> None:
    """Create a new certificate authority (refuses to replace an existing one).

    \b
    Example:
      borderlane-provision pki init --pki pki --name "Belize Border Lanes CA"
    """
    try:
        ca = CertificateAuthority.create(pki_dir, name)
    except PkiError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created CA {name!r}: {ca.cert_path}")


@pki.command("issue")
@click.argument("kind", type=click.Choice(["device", "console", "server"]))
@click.argument("name")
@click.option(
    "--host", "hosts", multiple=True, help="Server certificates: DNS name or IP (repeat)."
)
@PKI_DIR
def pki_issue(kind: str, name: str, hosts: tuple[str, ...], pki_dir: Path) -> None:
    """Issue a certificate: a kiosk's (NAME is its device id), the console's, or a server's.

    The certificate and its key (mode 0600) go to PKI/issued/NAME.crt and NAME.key.

    \b
    Examples:
      borderlane-provision pki issue device kiosk-bz-01
      borderlane-provision pki issue console console
      borderlane-provision pki issue server broker --host localhost --host 127.0.0.1
    """
    try:
        ca = CertificateAuthority.load(pki_dir)
        if kind == "server":
            identity = ca.issue_server(name, list(hosts))
        else:
            if hosts:
                raise click.UsageError("--host applies to server certificates only")
            identity = ca.issue_client(name)
    except (PkiError, TopicError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"issued {kind} certificate {identity.cert_path} (key {identity.key_path})")


@cli.group()
def broker() -> None:
    """Mosquitto configuration."""


@broker.command("config")
@PKI_DIR
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for mosquitto.conf, the ACL file, log and persistence.",
)
@click.option("--tls-port", type=click.IntRange(1, 65535), default=8883, show_default=True)
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
    help="Certificate name allowed the whole topic tree (repeat).",
)
def broker_config(
    pki_dir: Path,
    out: Path,
    tls_port: int,
    plain_port: int | None,
    bind_address: str,
    server_name: str,
    consoles: tuple[str, ...],
) -> None:
    """Write mosquitto.conf and the ACL derived from the wire contract.

    \b
    Example:
      borderlane-provision broker config --pki pki --out broker --bind 0.0.0.0
      mosquitto -c broker/mosquitto.conf
    """
    try:
        ca = CertificateAuthority.load(pki_dir)
        server = ca.identity(server_name)
    except PkiError as exc:
        raise click.ClickException(str(exc)) from None
    config = BrokerConfig(
        directory=out.resolve(),
        tls_port=tls_port,
        plain_port=plain_port,
        bind_address=bind_address,
        ca_file=ca.cert_path.resolve(),
        cert_file=server.cert_path.resolve(),
        key_file=server.key_path.resolve(),
        console_identities=consoles,
    )
    click.echo(f"wrote {write_config(config)} and {config.acl_file}")


def main() -> None:
    cli(prog_name="borderlane-provision")

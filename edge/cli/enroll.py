"""``borderlane-edge enroll``: a kiosk's first boot, with a one-time token from the console."""

from __future__ import annotations

from pathlib import Path

import click

from ..uplink.enroll import EnrollError, enroll
from .common import OneLineErrors


@click.command("enroll", cls=OneLineErrors)
@click.option("--console", "console_url", required=True, help="The console's enrollment URL.")
@click.option("--token", required=True, help="The one-time token (DEVICE-ID:SECRET).")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where the key, certificates and enrollment facts go (the config's directory).",
)
@click.option(
    "--ca",
    "ca_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The deployment's service CA (comes with the image): how the console is recognised.",
)
@click.option("--timeout", type=click.FloatRange(1, 300), default=30.0, show_default=True)
def enroll_command(
    console_url: str, token: str, state_dir: Path, ca_file: Path, timeout: float
) -> None:
    """Enroll this kiosk: make its private key here (it never leaves the kiosk), send a
    certificate request with the token, and keep the certificate, the broker's address and CA,
    and the watchlist signing keys in STATE_DIR. `borderlane-edge run` connects afterwards.

    \b
    Example:
      borderlane-edge enroll --console https://console.example.bz:8443 \\
          --token kiosk-bz-07:Qm9yZGVy... --state-dir /etc/borderlane \\
          --ca /etc/borderlane/service-ca.crt
    """
    try:
        done = enroll(console_url, token, state_dir, ca_file=ca_file, timeout=timeout)
    except EnrollError as exc:
        raise click.ClickException(f"enrollment refused at {exc.step}: {exc.reason}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write to {state_dir}: {exc.strerror}") from None
    click.echo(
        f"enrolled {done.device_id} at {done.post}; broker {done.broker_host}:{done.broker_port}; "
        f"files in {done.state_dir}"
    )

"""Run the Borderlane stack locally: ``make demo`` (``DEMO_SECONDS=N`` stops it by itself).

State lives under ``.demo/`` in the repository (``DEMO_STATE`` overrides it): the PKI (kept
between runs, so certificates you copied stay valid) and the broker's configuration, log and
persistence. Every process started
here is stopped on Ctrl-C, on SIGTERM, or when ``DEMO_SECONDS`` have passed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from provisioning.broker import BrokerConfig, BrokerError, Mosquitto, free_port
from provisioning.pki import CertificateAuthority

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("DEMO_STATE") or ROOT / ".demo")
DEMO_KIOSKS = ("kiosk-bz-01", "kiosk-bz-02")


class Stop(Exception):
    """Raised by the SIGTERM handler so cleanup runs exactly as for Ctrl-C."""


def demo_seconds() -> float | None:
    value = os.environ.get("DEMO_SECONDS", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        sys.exit(f"demo: DEMO_SECONDS must be a number of seconds, got {value!r}")
    if seconds <= 0:
        sys.exit(f"demo: DEMO_SECONDS must be positive, got {value!r}")
    return seconds


def prepare_pki() -> CertificateAuthority:
    ca = CertificateAuthority.open_or_create(STATE / "pki", "Borderlane Demo CA")
    for name in ("console", *DEMO_KIOSKS):
        if not (ca.directory / "issued" / f"{name}.crt").exists():
            ca.issue_client(name)
    if not (ca.directory / "issued" / "broker.crt").exists():
        ca.issue_server("broker", hosts=["localhost", "127.0.0.1"])
    return ca


def main() -> int:
    seconds = demo_seconds()
    ca = prepare_pki()
    server = ca.identity("broker")
    config = BrokerConfig(
        directory=STATE / "broker",
        tls_port=int(os.environ.get("DEMO_TLS_PORT") or free_port()),
        plain_port=int(os.environ.get("DEMO_PLAIN_PORT") or free_port()),
        ca_file=ca.cert_path,
        cert_file=server.cert_path,
        key_file=server.key_path,
    )

    def on_sigterm(signum: int, frame: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_sigterm)
    broker = Mosquitto(config)
    try:
        broker.start()
        console = ca.identity("console")
        kiosk = ca.identity(DEMO_KIOSKS[0])
        print(
            f"""
Borderlane demo is running.

  broker (Mosquitto)  mqtts://127.0.0.1:{config.tls_port}  client certificates from {ca.cert_path}
                      mqtt://127.0.0.1:{config.plain_port}   plain, loopback only, for watching
                      pid {broker.pid}, config {config.config_file}, log {config.log_file}
  certificates        {ca.directory / "issued"}  (console, {", ".join(DEMO_KIOSKS)}, broker)

Watch all traffic:
  mosquitto_sub -p {config.plain_port} -t 'borderlane/v1/#' -v

Publish as kiosk {DEMO_KIOSKS[0]} (its certificate confines it to its own topics):
  mosquitto_pub -p {config.tls_port} --cafile {ca.cert_path} \\
      --cert {kiosk.cert_path} --key {kiosk.key_path} \\
      -t borderlane/v1/devices/{DEMO_KIOSKS[0]}/health -m '{{}}'

Subscribe as the console:
  mosquitto_sub -p {config.tls_port} --cafile {ca.cert_path} \\
      --cert {console.cert_path} --key {console.key_path} -t 'borderlane/v1/#' -v

{"Stopping by itself after " + format(seconds, "g") + " s; " if seconds else ""}Ctrl-C stops it.""",
            flush=True,
        )
        deadline = time.monotonic() + seconds if seconds else None
        while deadline is None or time.monotonic() < deadline:
            if not broker.running:
                print(
                    f"demo: the broker stopped unexpectedly: {broker.log()[-500:]}", file=sys.stderr
                )
                return 1
            time.sleep(0.2)
    except BrokerError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        pass
    finally:
        broker.stop()
    print("demo stopped; nothing left running.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

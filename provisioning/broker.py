"""Mosquitto configuration and access rules derived from the wire contract, and a way to run it.

Two TLS listeners, told apart by the authority that issued the client's certificate
(:mod:`provisioning.pki`):

* the **device listener** (``tls_port``) accepts certificates of the device CA, checked against
  its revocation list (``crlfile``, re-read on SIGHUP: :meth:`Mosquitto.reload`), and forces
  each client's MQTT client id to its certificate's name (``use_username_as_clientid``), so
  a kiosk can only be itself and can never take over another client's session;
* the **service listener** (``service_port``) accepts certificates of the service CA (the
  console), whose client ids are their own (several ingest workers share one identity).

Access is decided by Mosquitto's dynamic-security plugin on both: every kiosk is a client with
a role of its own whose entries come from :data:`mqtt_schemas.topics.CHANNELS`
(:func:`mqtt_schemas.broker_access.device_role`), checked when a client subscribes as well as on
each message (Mosquitto's ACL file checks only deliveries, so any kiosk could join the console's
``$share`` group). A certificate the plugin does not know may do nothing at all. Console
identities may use the whole tree and the plugin's control topic, through which kiosks are
added (:meth:`DynamicSecurity.add_device`) and removed at once, their session kicked
(:meth:`DynamicSecurity.remove_device`).

:class:`Mosquitto` runs a broker from such a configuration for tests, the demo and technicians
(production runs Mosquitto under systemd with the same files)::

    config = BrokerConfig(directory, tls_port=8883, service_port=8884, ca_file=...,
                          service_ca_file=..., crl_file=..., cert_file=..., key_file=...)
    with Mosquitto(config) as broker:
        ...  # kiosks on tls_port, the console on service_port
"""

from __future__ import annotations

import getpass
import glob
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mqtt_schemas.broker_access import (
    CONTROL_RESPONSE_TOPIC,
    CONTROL_TOPIC,
    SERVICE_ROLE,
    add_device_commands,
    device_role,
    remove_device_commands,
    service_role,
)

from .pki import CertificateAuthority, Pki

DEFAULT_CONSOLE_IDENTITIES = ("console",)
MAX_PACKET_SIZE = 4 * 1024 * 1024
"""Largest MQTT packet the broker accepts: a watchlist chunk fits, a runaway sender does not."""


class BrokerError(Exception):
    """The broker could not be configured or started; the message says why."""


@dataclass(frozen=True)
class BrokerConfig:
    """Everything needed to write a Mosquitto configuration.

    ``ca_file`` and ``crl_file`` are the device CA's (the device listener on ``tls_port``);
    ``service_ca_file`` is the service CA's (the console's listener on ``service_port``).
    ``devices`` are kiosks the access rules know from the start (more are added while the
    broker runs). ``plain_port`` opens an unauthenticated listener on loopback with full access;
    it exists for local observers in tests and the demo and is off (``None``) unless asked for.
    No private key of either CA is needed.
    """

    directory: Path
    tls_port: int
    service_port: int
    ca_file: Path
    service_ca_file: Path
    crl_file: Path
    cert_file: Path
    key_file: Path
    plain_port: int | None = None
    bind_address: str = "127.0.0.1"
    console_identities: tuple[str, ...] = DEFAULT_CONSOLE_IDENTITIES
    devices: tuple[str, ...] = ()
    persistence: bool = True
    run_as: str | None = None
    """The user the broker drops to (default: whoever runs it, unless that is root, which is
    refused: then ``mosquitto``)."""

    def __post_init__(self) -> None:
        if self.tls_port == self.service_port:
            raise BrokerError("the device and service listeners need two different ports")
        if self.plain_port is not None and self.plain_port in (self.tls_port, self.service_port):
            raise BrokerError("the plain listener needs a port of its own")

    @classmethod
    def local(
        cls,
        pki: Pki,
        directory: Path,
        *,
        devices: tuple[str, ...] = (),
        persistence: bool = True,
        tls_port: int | None = None,
        service_port: int | None = None,
        plain_port: int | None = None,
    ) -> BrokerConfig:
        """A broker on loopback for *pki* (its service CA's ``broker`` certificate), on the
        ports given or free ones: for tests, benchmarks and the demo."""
        server = pki.services.identity("broker")
        return cls(
            directory=directory,
            tls_port=tls_port or free_port(),
            service_port=service_port or free_port(),
            plain_port=plain_port or free_port(),
            ca_file=pki.devices.cert_path,
            service_ca_file=pki.services.cert_path,
            crl_file=pki.devices.crl_path,
            cert_file=server.cert_path,
            key_file=server.key_path,
            devices=devices,
            persistence=persistence,
        )

    @property
    def config_file(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def dynsec_file(self) -> Path:
        return self.directory / "dynamic-security.json"

    @property
    def log_file(self) -> Path:
        return self.directory / "mosquitto.log"


def dynamic_security_plugin() -> Path:
    """Where Mosquitto's dynamic-security plugin is installed (Debian: per architecture)."""
    for pattern in (
        "/usr/lib/*/mosquitto_dynamic_security.so",
        "/usr/lib/mosquitto_dynamic_security.so",
        "/usr/local/lib/mosquitto_dynamic_security.so",
    ):
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise BrokerError(
        "Mosquitto's dynamic-security plugin is not installed (apt-get install mosquitto)"
    )


def render_dynsec(
    console_identities: tuple[str, ...] = DEFAULT_CONSOLE_IDENTITIES,
    devices: tuple[str, ...] = (),
    existing: dict | None = None,
) -> dict:
    """The dynamic-security plugin's state: the console's role and clients, one role and client
    per kiosk, and deny by default. *existing* (the plugin's file from an earlier run, which
    holds the kiosks added since) is kept, with the service entries made as configured."""
    state = existing or {}
    roles = {r["rolename"]: r for r in state.get("roles", [])}
    clients = {c["username"]: c for c in state.get("clients", [])}
    roles[SERVICE_ROLE] = service_role()
    for identity in console_identities:
        clients[identity] = {"username": identity, "roles": [{"rolename": SERVICE_ROLE}]}
    for device in devices:
        role = device_role(device)
        roles[role["rolename"]] = role
        clients[device] = {"username": device, "roles": [{"rolename": role["rolename"]}]}
    return {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": sorted(clients.values(), key=lambda c: c["username"]),
        "groups": state.get("groups", []),
        "roles": sorted(roles.values(), key=lambda r: r["rolename"]),
    }


def render_config(config: BrokerConfig) -> str:
    """The ``mosquitto.conf`` text for *config*."""
    plugin = dynamic_security_plugin()
    user = config.run_as or getpass.getuser()
    lines = [
        "# Generated by provisioning.broker; do not edit.",
        "per_listener_settings true",
        f"user {user}",
        f"log_dest file {config.log_file}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        f"max_packet_size {MAX_PACKET_SIZE}",
        # Nagle's algorithm stalls each small MQTT hop by ~40 ms (publish-to-ack 92 ms vs 8 ms).
        "set_tcp_nodelay true",
        # A console down for a while must not lose the kiosks' records queued for its session.
        "max_queued_messages 100000",
        "max_queued_bytes 268435456",
        f"persistence {'true' if config.persistence else 'false'}",
        f"persistence_location {config.directory}/",
        f"pid_file {config.directory / 'mosquitto.pid'}",
        "",
        "# Kiosks: device CA, revocation list, client id = certificate name.",
        f"listener {config.tls_port} {config.bind_address}",
        "protocol mqtt",
        f"cafile {config.ca_file}",
        f"crlfile {config.crl_file}",
        f"certfile {config.cert_file}",
        f"keyfile {config.key_file}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {config.dynsec_file}",
        "",
        "# Services (the console): service CA.",
        f"listener {config.service_port} {config.bind_address}",
        "protocol mqtt",
        f"cafile {config.service_ca_file}",
        f"certfile {config.cert_file}",
        f"keyfile {config.key_file}",
        "tls_version tlsv1.2",
        "require_certificate true",
        "use_identity_as_username true",
        "allow_anonymous false",
        f"plugin {plugin}",
        f"plugin_opt_config_file {config.dynsec_file}",
    ]
    if config.plain_port is not None:
        lines += [
            "",
            "# Loopback observers only: no TLS, no ACL.",
            f"listener {config.plain_port} 127.0.0.1",
            "protocol mqtt",
            "allow_anonymous true",
        ]
    return "\n".join(lines) + "\n"


def write_config(config: BrokerConfig) -> Path:
    """Write ``mosquitto.conf`` and the access rules into ``config.directory`` (keeping the
    kiosks added to the rules since they were first written); return the config path."""
    config.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = None
    if config.dynsec_file.exists():
        try:
            existing = json.loads(config.dynsec_file.read_text())
        except ValueError as exc:
            raise BrokerError(f"{config.dynsec_file} is unreadable: {exc}") from None
    state = render_dynsec(config.console_identities, config.devices, existing)
    _write_private(config.dynsec_file, json.dumps(state, indent=1) + "\n")
    _write_private(config.config_file, render_config(config))
    return config.config_file


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on *host* right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Mosquitto:
    """A Mosquitto process running *config*, started and stopped as a context manager.

    Start-up waits until every listener accepts connections; a broker that exits or never
    listens raises :class:`BrokerError` with the end of its log. Stopping sends SIGTERM to the
    broker's own process group and waits, so no process is left behind.
    """

    def __init__(self, config: BrokerConfig, executable: str = "mosquitto") -> None:
        self.config = config
        self.executable = executable
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which(self.executable)
        if binary is None:
            raise BrokerError(
                f"{self.executable} is not installed (apt-get install mosquitto mosquitto-clients)"
            )
        write_config(self.config)
        command = [binary, "-c", str(self.config.config_file)]
        # Parent-death signal: a broker must never outlive the test run or demo that started it,
        # even one killed with SIGKILL. It fires when the starting *thread* exits.
        if shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "TERM", "--", *command]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        tls_host = (
            "127.0.0.1" if self.config.bind_address == "0.0.0.0" else self.config.bind_address
        )
        endpoints = [(tls_host, self.config.tls_port), (tls_host, self.config.service_port)]
        if self.config.plain_port is not None:
            endpoints.append(("127.0.0.1", self.config.plain_port))
        ports = [port for _, port in endpoints]
        deadline = time.monotonic() + timeout
        while not all(_accepts(host, port) for host, port in endpoints):
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace")
                raise BrokerError(
                    f"mosquitto exited with {self._process.returncode}: {self._tail(stderr)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(
                    f"mosquitto did not listen on {ports} within {timeout}s: {self._tail()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr:
            process.stderr.close()

    def reload(self) -> None:
        """Make the broker re-read its configuration and the revocation list (SIGHUP): a
        revoked certificate is refused from the next handshake; no client is disconnected."""
        if self._process is None or self._process.poll() is not None:
            raise BrokerError("the broker is not running")
        os.kill(self._process.pid, signal.SIGHUP)

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crash or power cut would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log(self) -> str:
        """The broker's log so far."""
        try:
            return self.config.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _tail(self, extra: str = "") -> str:
        text = (self.log() + extra).strip().splitlines()
        return " | ".join(text[-5:]) or "no log output"

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class DynamicSecurity:
    """A console identity's connection to the broker's dynamic-security control topic, to add
    and remove kiosks while the broker runs (blocking; for provisioning tools and tests)::

        with DynamicSecurity("127.0.0.1", config.service_port, ca, cert, key) as rules:
            rules.add_device("kiosk-bz-07")
            rules.remove_device("kiosk-bz-07")      # its session is kicked at once
    """

    def __init__(
        self,
        host: str,
        port: int,
        ca_file: Path,
        cert_file: Path,
        key_file: Path,
        *,
        client_id: str = "console:dynamic-security",
        timeout: float = 5.0,
    ) -> None:
        import paho.mqtt.client as mqtt  # here: the provisioning CLI works without paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.timeout = timeout
        self._responses: list[dict] = []
        self._arrived = threading.Condition()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self._client.tls_set(str(ca_file), str(cert_file), str(key_file), ssl.CERT_REQUIRED)
        self._client.on_message = self._on_message
        self._address = (host, port)

    def __enter__(self) -> DynamicSecurity:
        try:
            self._client.connect(*self._address)
        except (OSError, ssl.SSLError) as exc:
            raise BrokerError(f"cannot reach the broker at {self._address}: {exc}") from None
        self._client.loop_start()
        result, _mid = self._client.subscribe(CONTROL_RESPONSE_TOPIC, 1)
        if result != 0:
            raise BrokerError(f"cannot subscribe to {CONTROL_RESPONSE_TOPIC}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_message(self, client: object, userdata: object, message: object) -> None:
        try:
            payload = json.loads(message.payload)  # type: ignore[attr-defined]
        except ValueError:
            return
        with self._arrived:
            self._responses.append(payload)
            self._arrived.notify_all()

    def run(self, commands: list[dict]) -> list[dict]:
        """Send *commands* and wait for the plugin's answers, one per command."""
        deadline = time.monotonic() + self.timeout
        # The subscription may not be active yet right after connecting: resend until answered.
        while True:
            with self._arrived:
                self._responses.clear()
            self._client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
            with self._arrived:
                self._arrived.wait_for(lambda: bool(self._responses), timeout=0.5)
                if self._responses:
                    return self._responses[0].get("responses", [])
            if time.monotonic() > deadline:
                raise BrokerError("the broker's dynamic-security plugin did not answer")

    def add_device(self, device_id: str) -> None:
        """Let *device_id* connect with its own role (replacing an earlier one)."""
        answers = self.run(add_device_commands(device_id))
        failed = [a for a in answers[2:] if a.get("error")]
        if failed:
            raise BrokerError(f"adding {device_id}: {failed[0]['error']}")

    def remove_device(self, device_id: str) -> None:
        """Take every right away from *device_id* and disconnect it at once."""
        self.run(remove_device_commands(device_id))


RELOAD_SETTLE_S = 1.0
"""Time for the broker to act on SIGHUP (its main loop looks at the signal flag several times
a second) before the revoked kiosk is kicked, so that its reconnection meets the new CRL."""


def reload_broker(pid_file: Path) -> None:
    """Make the broker whose pid *pid_file* holds re-read its configuration and CRL (SIGHUP).
    Connected clients stay connected."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError, IndexError) as exc:
        raise BrokerError(f"cannot signal the broker ({pid_file}): {exc}") from None


def revoke_device(
    devices: CertificateAuthority,
    device_id: str,
    reason: str,
    *,
    reload: Callable[[], None],
    rules: DynamicSecurity,
) -> int:
    """Revoke a kiosk: its certificate goes on the CRL, the broker re-reads the CRL (*reload*),
    and the access rules drop the kiosk, which disconnects it; its reconnection then fails the
    TLS handshake. Other kiosks stay connected. Returns the revoked serial number."""
    serial = devices.revoke(device_id, reason)
    drop_device(device_id, reload=reload, rules=rules)
    return serial


def drop_device(device_id: str, *, reload: Callable[[], None], rules: DynamicSecurity) -> None:
    """After a revocation: the broker re-reads the CRL (*reload*), then the access rules drop
    the kiosk, which disconnects it; its reconnection meets the new CRL."""
    reload()
    time.sleep(RELOAD_SETTLE_S)
    rules.remove_device(device_id)

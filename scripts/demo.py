"""Run the whole Borderlane loop locally: ``make demo`` (``DEMO_SECONDS=N`` stops it by itself).

What runs (every process is a real one, on real parts):

- Mosquitto with TLS and one client certificate per kiosk and for the console;
- the console: ``borderlane-console ingest`` (stores crossings, health, acks),
  ``borderlane-console watchlist serve`` (answers kiosks' catch-ups) and
  ``borderlane-console web`` (the console for people, on ``DEMO_WEB_PORT`` or a free port, with
  one demo account per role, password :data:`DEMO_PASSWORD`, printed in the banner); the
  watchlist (the synthetic population's listed travellers plus filler) is published once,
  signed;
- ``borderlane-console devices serve-enrollment`` (kiosks enroll with a one-time token over
  HTTPS, on ``DEMO_ENROLL_PORT`` or a free port, its certificate from the demo's service CA);
  the web console's ``console.toml`` gets ``[devices]`` (the device CA, the broker's pid file,
  the enrollment address) so kiosks are enrolled and revoked from its pages too. The banner
  prints the steps: a token, ``borderlane-edge enroll``, then ``scripts/demo_kiosk.py`` runs the
  enrolled kiosk from its files beside the others, and it shows on the fleet dashboard;
- ``DEMO_KIOSKS`` kiosks (default 3): each is the real agent (``python -m edge run``) with its
  own pcscd + vpcd card reader and a virtual serial MRZ reader, and a traveller simulator
  (``borderlane-edge sim travellers``) walking synthetic travellers up to it: CBIC holders
  tap, passport holders scan their MRZ and then present the chip; some are on the watchlist,
  some hold an expired card or one not valid at this crossing.

The console database is SQLite ``.demo/console.db`` by default; ``DEMO_DB=postgresql`` runs the
console on a private PostgreSQL server (a throwaway cluster started for the run), and
``DEMO_DB=postgresql://…`` on a database of yours, which must hold no crossings yet. The
console's processes get the database through ``$BORDERLANE_CONSOLE_DB``, never on their command
line (a URL may carry a password).

State lives under ``.demo/`` (``DEMO_STATE`` overrides): the PKI and the population are kept
between runs; the kiosks' databases and the console database start afresh each run so the final
count is this run's. At the end (Ctrl-C, SIGTERM or ``DEMO_SECONDS``) the simulators stop, the
kiosks get a moment to deliver what they hold, and the demo prints how many crossings the
kiosks generated, how many the console stored, and how many the kiosks saw acked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge.sim.pcscd import PcscStack, PcscStackError
from edge.sim.population import Population, make_population
from edge.ui.officers import add_officer
from mqtt_schemas.watchlist import generate_key, key_fingerprint, private_key_pem, public_key_pem
from provisioning.broker import BrokerConfig, BrokerError, Mosquitto, free_port
from provisioning.pki import Pki

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sqlalchemy import text

from console.accounts import Accounts
from console.settings import DEFAULT_AGENCIES
from console.store import StoreError, describe, open_database
from harness.console_web import PASSWORD as DEMO_PASSWORD
from harness.console_web import ROLE_ACCOUNTS, add_role_accounts
from harness.postgres import PostgresError, PostgresServer

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("DEMO_STATE") or ROOT / ".demo")
SITE = "bz-santa-elena"
DEMO_OFFICER = ("BDF-0001", "246810")
"""The demo's officer (id, PIN) for the kiosks' officer review pages."""
DRAIN_S = 20.0
"""At the end: how long the kiosks get to deliver what their outboxes still hold."""
WEB_START_S = 20.0
"""How long the console web gets to answer before the demo gives up on it."""
NEW_KIOSK = STATE / "new-kiosk"
"""Where the banner's ``borderlane-edge enroll`` keeps the enrolled kiosk's files (emptied at
each start: the console database starts afresh too)."""
NEW_KIOSK_ID = "kiosk-bz-new"


class Stop(Exception):
    """Raised by the SIGTERM handler so cleanup runs exactly as for Ctrl-C."""


def _number(name: str, default: float, *, integer: bool = False) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        kind = "a whole number" if integer else "a number of seconds"
        sys.exit(f"demo: {name} must be {kind}, got {value!r}")
    if number <= 0:
        sys.exit(f"demo: {name} must be positive, got {value!r}")
    return number


def demo_seconds() -> float | None:
    if not os.environ.get("DEMO_SECONDS", "").strip():
        return None
    return _number("DEMO_SECONDS", 0)


def kiosk_names() -> list[str]:
    count = int(_number("DEMO_KIOSKS", 3, integer=True))
    return [f"kiosk-bz-{number:02d}" for number in range(1, count + 1)]


def _pdeathsig() -> list[str]:
    """Children die with the demo even if it is killed (setpriv --pdeathsig)."""
    return ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []


def _python(*args: str) -> list[str]:
    return [*_pdeathsig(), sys.executable, *args]


@dataclass
class Kiosk:
    name: str
    directory: Path
    stack: PcscStack
    ui_port: int
    agent: subprocess.Popen[bytes] | None = None
    travellers: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.directory / "state" / "kiosk.db"

    def watchlist_version(self) -> int:
        path = self.directory / "state" / "watchlist.db"
        if not path.exists():
            return 0
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        except sqlite3.OperationalError:
            return 0
        finally:
            connection.close()
        return int(row[0]) if row else 0

    def counts(self) -> tuple[int, int]:
        """(crossings the lane recorded, crossings still waiting for the console's ack)."""
        if not self.db.exists():
            return 0, 0
        connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            recorded = connection.execute(
                "SELECT coalesce(sum(recorded), 0) FROM lane_state"
            ).fetchone()[0]
            waiting = connection.execute(
                "SELECT count(*) FROM uplink_outbox WHERE channel = 'crossings'"
            ).fetchone()[0]
        except sqlite3.OperationalError:
            return 0, 0
        finally:
            connection.close()
        return recorded, waiting


@dataclass
class Demo:
    kiosks: list[Kiosk] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stacks: list[PcscStack] = field(default_factory=list)

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None):
        log = open(STATE / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        log.close()
        self.processes.append(process)
        return process

    def start_kiosk(
        self,
        name: str,
        directory: Path,
        uplink: Uplink,
        population: Population,
        trust: Path,
        site: str = SITE,
    ) -> Kiosk:
        """A kiosk's agent with its own card reader (pcscd + vpcd), its configuration in
        *directory*, reaching the broker by *uplink*; watchlists signed by a key in *trust*."""
        directory.mkdir(parents=True)
        stack = PcscStack().start()
        self.stacks.append(stack)
        kiosk = Kiosk(name, directory, stack, free_port())
        path = kiosk_config(kiosk, uplink, population, trust, site)
        kiosk.agent = self.spawn(
            name, _python("-m", "edge", "run", "--config", str(path)), stack.env
        )
        self.kiosks.append(kiosk)
        return kiosk

    def start_travellers(self, kiosk: Kiosk, population: Population, seed: int) -> None:
        """Synthetic travellers walking up to *kiosk*: cards tapped, MRZs scanned."""
        kiosk.travellers = self.spawn(
            f"{kiosk.name}-travellers",
            _python(
                "-m",
                "edge",
                "sim",
                "travellers",
                "--population",
                str(population.directory),
                "--vpcd-port",
                str(kiosk.stack.vpcd_port),
                "--mrz-link",
                str(kiosk.directory / "mrz-reader"),
                "--interval",
                "1",
                "--seed",
                str(seed),
            ),
        )

    def stop_all(self) -> None:
        """Travellers, then kiosks (their offline reaches a console still listening), then
        the console's processes."""
        kiosks = [k.agent for k in self.kiosks if k.agent] + [
            k.travellers for k in self.kiosks if k.travellers
        ]
        self._stop([p for p in kiosks if p is not None])
        self._stop([p for p in self.processes if p not in kiosks])
        for stack in self.stacks:
            stack.stop()

    @staticmethod
    def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def prepare_pki(names: list[str]) -> Pki:
    """The device CA (kiosks) and the service CA (console, broker), made on the first run."""
    pki = Pki.open_or_create(STATE / "pki", "Borderlane Demo")
    for name in names:
        if not (pki.devices.directory / "issued" / f"{name}.crt").exists():
            pki.devices.issue_client(name)
    if not (pki.services.directory / "issued" / "console.crt").exists():
        pki.services.issue_service_client("console")
    for server in ("broker", "enroll"):  # the broker, and the enrollment endpoint (HTTPS)
        if not (pki.services.directory / "issued" / f"{server}.crt").exists():
            pki.services.issue_server(server, hosts=["localhost", "127.0.0.1"])
    return pki


def prepare_population() -> Population:
    directory = STATE / "population"
    if (directory / "population.json").exists():
        return Population.load(directory)
    size = int(_number("DEMO_TRAVELLERS", 400, integer=True))
    return make_population(directory, size, seed=20261124, site=SITE)


def prepare_signing_key() -> tuple[Path, str]:
    """The console's watchlist signing key: Ed25519, apart from every TLS key."""
    directory = STATE / "watchlist-signing"
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "signing.key.pem"
    if not private.exists():
        key = generate_key()
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(private_key_pem(key))
        key_id = f"wl-demo-{key_fingerprint(key)[:12]}"
        (directory / "key_id").write_text(key_id)
        (directory / f"{key_id}.pub.pem").write_bytes(public_key_pem(key))
    return private, (directory / "key_id").read_text().strip()


def prepare_officers() -> Path:
    path = STATE / "officers.json"
    if not path.exists():
        add_officer(path, *DEMO_OFFICER)
    return path


@dataclass(frozen=True)
class Uplink:
    """How a kiosk reaches the broker: its listener, the CA it knows the broker by, and its
    own certificate and key."""

    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


def provisioned_uplink(pki: Pki, name: str, tls_port: int) -> Uplink:
    """A demo kiosk's uplink: a certificate the provisioning tool issued (made on first run)."""
    identity = pki.devices.identity(name)
    # kiosks recognise the broker by the service CA
    return Uplink(
        "127.0.0.1", tls_port, pki.services.cert_path, identity.cert_path, identity.key_path
    )


def kiosk_config(
    kiosk: Kiosk, uplink: Uplink, population: Population, trust: Path, site: str = SITE
) -> Path:
    text = f"""# Written by scripts/demo.py for this run.
[agent]
device_id = "{kiosk.name}"
data_dir = "state"
restart_initial_s = 0.5
restart_max_s = 5

[lane]
site = "{site}"
lane = "lane-1"
direction = "entry"

[lane.policy]
show_s = 1

[trust]
issuers = "{population.cbic_trust_dir}"
csca = ["{population.csca_dir}"]

[watchlist]
trusted_keys = "{trust}"

[card_reader]
readers = ["={kiosk.stack.reader_names[0]}"]

[mrz_reader]
port = "{kiosk.directory / "mrz-reader"}"

[uplink.broker]
host = "{uplink.host}"
port = {uplink.port}
ca_file = "{uplink.ca_file}"
cert_file = "{uplink.cert_file}"
key_file = "{uplink.key_file}"

[uplink.delivery]
ack_timeout_s = 10

[ui]
port = {kiosk.ui_port}
officers = "{STATE / "officers.json"}"

[health]
interval_s = 5
"""
    path = kiosk.directory / "kiosk.toml"
    path.write_text(text)
    return path


def wait_for_watchlist(kiosks: list[Kiosk], timeout: float = 30.0) -> None:
    """Until every kiosk applied the published watchlist (a kiosk without one refers everyone:
    the demo's travellers should meet kiosks in service)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(kiosk.watchlist_version() >= 1 for kiosk in kiosks):
            return
        time.sleep(0.2)
    late = [kiosk.name for kiosk in kiosks if kiosk.watchlist_version() < 1]
    print(f"demo: {', '.join(late)} has no watchlist yet; it refers every traveller until then")


def console_count(db: str, names: list[str]) -> int:
    """The crossings of this run's kiosks in the console database (0 before it exists)."""
    try:
        engine = open_database(db, readonly=True)
    except StoreError:
        return 0
    try:
        with engine.connect() as conn:
            return sum(
                conn.execute(
                    text("SELECT count(*) FROM crossings WHERE device_id = :device"),
                    {"device": name},
                ).scalar_one()
                for name in names
            )
    finally:
        engine.dispose()


@dataclass
class ConsoleDatabase:
    """Where this run's console keeps its data: ``target`` for ``--db``/the environment."""

    target: str
    server: PostgresServer | None = None

    @property
    def shown(self) -> str:
        return describe(self.target)

    def env(self) -> dict[str, str]:
        return {"BORDERLANE_CONSOLE_DB": self.target}

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()  # a throwaway cluster: its data goes with it
            (STATE / "console-db-url").unlink(missing_ok=True)


def prepare_console_database() -> ConsoleDatabase:
    """SQLite afresh, a private PostgreSQL, or the user's empty PostgreSQL (``DEMO_DB``)."""
    choice = os.environ.get("DEMO_DB", "").strip()
    if choice in ("", "sqlite"):
        path = STATE / "console.db"
        for stale in [path, *STATE.glob("console.db-*")]:
            stale.unlink(missing_ok=True)
        return ConsoleDatabase(str(path))
    if choice == "postgresql":
        server = PostgresServer()
        server.start()
        url = server.create_database("borderlane")
        url_file = STATE / "console-db-url"
        url_file.unlink(missing_ok=True)
        descriptor = os.open(url_file, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:  # the password stays off the screen
            handle.write(url + "\n")
        return ConsoleDatabase(url, server)
    if choice.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        if _has_crossings(choice):
            raise StoreError(
                f"{describe(choice)} already holds crossings: give the demo an empty database"
            )
        return ConsoleDatabase(choice)
    raise StoreError(f"DEMO_DB={choice!r}: expected sqlite, postgresql or a postgresql:// URL")


def _has_crossings(target: str) -> bool:
    try:
        engine = open_database(target, readonly=True)
    except StoreError:
        return False  # empty: the console makes its schema
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 FROM crossings LIMIT 1")).first() is not None
    finally:
        engine.dispose()


class WebError(Exception):
    """The console web (or the enrollment endpoint) did not come up."""


def enrollment_args(pki: Pki, config: BrokerConfig, port: int, watchlist_keys: Path) -> list[str]:
    """``devices serve-enrollment``'s options: HTTPS on *port* with the service CA's ``enroll``
    certificate, kiosks sent to the broker's device listener with the watchlist keys."""
    server = pki.services.identity("enroll")
    return [
        "--device-ca",
        str(pki.devices.directory),
        "--bind",
        f"127.0.0.1:{port}",
        "--tls-cert",
        str(server.cert_path),
        "--tls-key",
        str(server.key_path),
        "--kiosk-broker",
        f"127.0.0.1:{config.tls_port}",
        "--broker-ca",
        str(pki.services.cert_path),
        "--watchlist-keys",
        str(watchlist_keys),
    ]


def write_console_toml(pki: Pki, config: BrokerConfig, enroll_url: str) -> Path:
    """The web console's ``console.toml``: ``[devices]``, so its pages make tokens whose
    command fits this machine and revoke kiosks (the device CA, the broker's pid file)."""
    path = STATE / "web" / "console.toml"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(
        "# Written by scripts/demo.py for this run.\n"
        "[devices]\n"
        f'ca_dir = "{pki.devices.directory}"\n'
        f'broker_pid_file = "{config.directory / "mosquitto.pid"}"\n'
        f'enroll_url = "{enroll_url}"\n'
        f'kiosk_state_dir = "{NEW_KIOSK}"\n'
        f'kiosk_ca_file = "{pki.services.cert_path}"\n'
    )
    return path


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    """Until 127.0.0.1:*port* accepts connections (or *process* exits, or WEB_START_S pass)."""
    deadline = time.monotonic() + WEB_START_S
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise WebError(f"{what} did not start ({exc}); see {STATE / 'logs'}") from None
            time.sleep(0.1)


def add_demo_accounts(console_db: ConsoleDatabase) -> None:
    """One account per role in the console database (a known password, no forced change: for
    the demo only; a real console's accounts come from ``borderlane-console users add``)."""
    engine = open_database(console_db.target)  # makes the schema if ingest has not yet
    try:
        add_role_accounts(Accounts(engine), DEMO_PASSWORD)
    finally:
        engine.dispose()


def wait_for_web(url: str, process: subprocess.Popen[bytes]) -> None:
    """Until the console web answers its login page (or it exits, or WEB_START_S pass)."""
    deadline = time.monotonic() + WEB_START_S
    while True:
        try:
            with urllib.request.urlopen(url + "login", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise WebError(
                    f"the console web did not start ({exc}); see {STATE / 'logs'}"
                ) from None
            time.sleep(0.1)


def main() -> int:
    seconds = demo_seconds()
    names = kiosk_names()
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "logs").mkdir(exist_ok=True)
    pki = prepare_pki(names)
    ca = pki.services
    population = prepare_population()
    signing_key, key_id = prepare_signing_key()
    prepare_officers()
    shutil.rmtree(STATE / "kiosks", ignore_errors=True)
    shutil.rmtree(NEW_KIOSK, ignore_errors=True)
    try:
        console_db = prepare_console_database()
    except (StoreError, PostgresError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    config = BrokerConfig.local(
        pki,
        STATE / "broker",
        devices=tuple(names),
        tls_port=int(os.environ.get("DEMO_TLS_PORT") or 0),
        service_port=int(os.environ.get("DEMO_SERVICE_PORT") or 0),
        plain_port=int(os.environ.get("DEMO_PLAIN_PORT") or 0),
    )

    def on_sigterm(signum: int, frame: object) -> None:
        raise Stop

    signal.signal(signal.SIGTERM, on_sigterm)
    broker = Mosquitto(config)
    demo = Demo()
    console = ca.identity("console")
    broker_args = [
        "--broker",
        f"127.0.0.1:{config.service_port}",
        "--cafile",
        str(ca.cert_path),
        "--cert",
        str(console.cert_path),
        "--key",
        str(console.key_path),
    ]
    try:
        broker.start()
        demo.spawn(
            "console-ingest",
            _python("-m", "console", "ingest", *broker_args),
            console_db.env(),
        )
        demo.spawn(
            "console-watchlist",
            _python(
                "-m",
                "console",
                "watchlist",
                "serve",
                "--signing-key",
                str(signing_key),
                "--key-id",
                key_id,
                *broker_args,
            ),
            console_db.env(),
        )
        add_demo_accounts(console_db)
        enroll_port = int(os.environ.get("DEMO_ENROLL_PORT") or free_port())
        enroll_url = f"https://127.0.0.1:{enroll_port}"
        enroll = demo.spawn(
            "console-enroll",
            _python(
                "-m",
                "console",
                "devices",
                "serve-enrollment",
                *enrollment_args(pki, config, enroll_port, signing_key.parent),
                *broker_args,  # kiosks are added to the broker's rules as they enroll
            ),
            console_db.env(),
        )
        write_console_toml(pki, config, enroll_url)
        web_port = int(os.environ.get("DEMO_WEB_PORT") or free_port())
        web_url = f"http://127.0.0.1:{web_port}/"
        web = demo.spawn(
            "console-web",
            _python(
                "-m",
                "console",
                "web",
                "--instance",
                str(STATE / "web"),
                "--bind",
                f"127.0.0.1:{web_port}",
                *broker_args,  # the device pages send commands
            ),
            console_db.env(),
        )
        wait_for_web(web_url, web)
        wait_for_port(enroll_port, enroll, "the enrollment endpoint")
        demo.spawn(  # after the web console made the instance folder, whose console.toml it reads
            "console-alerts",
            _python(
                "-m",
                "console",
                "alerts",
                "watch",
                "--instance",
                str(STATE / "web"),
                "--every",
                "10",
            ),
            console_db.env(),
        )
        publish = subprocess.run(
            _python(
                "-m",
                "console",
                "watchlist",
                "publish",
                "--signing-key",
                str(signing_key),
                "--key-id",
                key_id,
                *broker_args,
                str(population.watchlist_path),
            ),
            capture_output=True,
            text=True,
            env={**os.environ, **console_db.env()},
        )
        if publish.returncode != 0:
            print(
                f"demo: publishing the watchlist failed: {publish.stderr.strip()}", file=sys.stderr
            )
            return 1
        for name in names:
            uplink = provisioned_uplink(pki, name, config.tls_port)
            demo.start_kiosk(name, STATE / "kiosks" / name, uplink, population, signing_key.parent)
        wait_for_watchlist(demo.kiosks)
        for number, kiosk in enumerate(demo.kiosks):
            demo.start_travellers(kiosk, population, number + 1)
        shown = banner(
            config, broker.pid, pki, console_db, demo.kiosks, seconds, web_url, enroll_url
        )
        print(shown, flush=True)
        deadline = time.monotonic() + seconds if seconds else None
        while deadline is None or time.monotonic() < deadline:
            if not broker.running:
                print(f"demo: the broker stopped: {broker.log()[-500:]}", file=sys.stderr)
                return 1
            for process in demo.processes:
                if process.poll() is not None:
                    print(
                        f"demo: {process.args} exited ({process.returncode}); see {STATE / 'logs'}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.2)
    except (BrokerError, PcscStackError, WebError, StoreError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        pass
    finally:
        summary = finish(demo, console_db, names)
        broker.stop()
        console_db.stop()
    print(summary)
    print("demo stopped; nothing left running.")
    return 0


def finish(demo: Demo, console_db: ConsoleDatabase, names: list[str]) -> str:
    """Stop the travellers, let the kiosks deliver, stop everything, and count."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for kiosk in demo.kiosks:
        if kiosk.travellers is not None and kiosk.travellers.poll() is None:
            kiosk.travellers.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        for kiosk in demo.kiosks:
            if kiosk.travellers is not None:
                kiosk.travellers.wait(10)
    deadline = time.monotonic() + DRAIN_S
    while demo.kiosks and time.monotonic() < deadline:
        if all(kiosk.counts()[1] == 0 for kiosk in demo.kiosks):
            break
        time.sleep(0.2)
    demo.stop_all()
    generated = sum(kiosk.counts()[0] for kiosk in demo.kiosks)
    waiting = sum(kiosk.counts()[1] for kiosk in demo.kiosks)
    stored = console_count(console_db.target, names)
    lost = generated - stored
    return (
        f"crossings: generated {generated} by {len(demo.kiosks)} kiosks, "
        f"stored {stored} in {console_db.shown}, acked {generated - waiting}"
        + (
            f"; {waiting} still in the kiosks' outboxes (they stay there until acked)"
            if waiting
            else ""
        )
        + (f"; MISSING {lost}" if lost > 0 and not waiting else "")
    )


def banner(
    config: BrokerConfig,
    broker_pid: int | None,
    pki: Pki,
    console_db: ConsoleDatabase,
    kiosks: list[Kiosk],
    seconds: float | None,
    web_url: str,
    enroll_url: str,
) -> str:
    ca = pki.services
    console = ca.identity("console")
    if console_db.server is None and "://" not in console_db.target:
        db_env = f"BORDERLANE_CONSOLE_DB={console_db.target} "
    elif console_db.server is not None:
        db_env = f"BORDERLANE_CONSOLE_DB=$(cat {STATE / 'console-db-url'}) "
    else:
        db_env = "BORDERLANE_CONSOLE_DB=<your URL> "
    lines = [
        "",
        "Borderlane demo is running.",
        "",
        f"  broker (Mosquitto)  mqtts://127.0.0.1:{config.tls_port}  (kiosks: device CA)",
        f"                      mqtts://127.0.0.1:{config.service_port}  (console: service CA)",
        f"                      mqtt://127.0.0.1:{config.plain_port}   (plain, loopback, to watch)",
        f"  certificates        {pki.directory}  (devices/ and services/, each its own CA)",
        f"                      pid {broker_pid}, log {config.log_file}",
        f"  console database    {console_db.shown}",
        f"  logs                {STATE / 'logs'}",
        "",
        f"Console for people: {web_url}",
        f"  log in as any of these, password {DEMO_PASSWORD} (demo accounts only):",
    ]
    for username, spec in ROLE_ACCOUNTS.items():
        agency = DEFAULT_AGENCIES.get(spec.agency, spec.agency)
        posts = f", posts {', '.join(spec.posts)}" if spec.posts else ""
        lines.append(
            f"    {username:<11} {spec.display_name}, {agency}, {spec.role} level {spec.level}"
            + posts
        )
    lines += [
        "",
        "Kiosks (agent + its own pcscd/vpcd card reader + virtual MRZ reader + travellers):",
    ]
    for kiosk in kiosks:
        lines.append(
            f"  {kiosk.name}  pages http://127.0.0.1:{kiosk.ui_port}/  database {kiosk.db}"
        )
    lines += [
        f"  officer review: /officer on each, officer {DEMO_OFFICER[0]}, PIN {DEMO_OFFICER[1]}",
        "",
        "Watch all traffic:",
        f"  mosquitto_sub -p {config.plain_port} -t 'borderlane/v1/#' -v",
        "Export the crossings stored so far:",
        f"  {db_env}.venv/bin/borderlane-console export crossings --format csv",
        "Ask a kiosk something:",
        f"  .venv/bin/borderlane-console command send --device {kiosks[0].name} diagnostics \\",
        f"      --broker 127.0.0.1:{config.service_port} --cafile {ca.cert_path} \\",
        f"      --cert {console.cert_path} --key {console.key_path}",
        "",
        f"Enroll a new kiosk (enrollment endpoint {enroll_url}/enroll):",
        f"  1. a token: {web_url}fleet/enroll as technician (kiosk id {NEW_KIOSK_ID}, post "
        f"{SITE}), or",
        f"     {db_env}.venv/bin/borderlane-console devices token {NEW_KIOSK_ID} \\",
        f"         --post {SITE} --ttl 1h --by technician",
        "  2. the kiosk enrolls with it (its key is made here and never leaves):",
        f"     .venv/bin/borderlane-edge enroll --console {enroll_url} --token TOKEN \\",
        f"         --state-dir {NEW_KIOSK} --ca {ca.cert_path}",
        "  3. run it beside the others; it shows on the fleet dashboard once it connects:",
        f"     DEMO_STATE={STATE} .venv/bin/python scripts/demo_kiosk.py {NEW_KIOSK}",
        f"  4. revoke it from its page, {web_url}fleet/{NEW_KIOSK_ID}, as admin (level 3+):",
        "     the broker drops it within seconds and refuses it from then on.",
        "",
        ("Stopping by itself after " + format(seconds, "g") + " s; " if seconds else "")
        + "Ctrl-C stops it.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

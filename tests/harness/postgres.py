"""A real PostgreSQL server per test session, and a fresh database for each test that wants one.

Use the ``console_db`` fixture for code that runs on either backend; the test runs twice, as
``test_x[sqlite]`` and ``test_x[postgresql]``::

    def test_something(console_db):   # "/tmp/.../console.db", or "postgresql+psycopg://..."
        run_console("--db", console_db)  # whatever the test does with a `--db` value

``postgres_url`` is a fresh, empty database on the session's server (dropped after the test) and
``postgres_server`` is the :class:`PostgresServer` itself. The server starts only when a test
first asks for one of them, so a run that selects only ``[sqlite]`` never starts PostgreSQL.

:class:`PostgresServer` works outside pytest too (benchmarks, the demo)::

    with PostgresServer() as server:                   # durable (fsync on) unless told otherwise
        url = server.create_database("bench")          # postgresql+psycopg://borderlane:...@...

How it runs the server, and why:

- Debian's server binaries (``apt-get install postgresql``): the newest
  ``/usr/lib/postgresql/<version>/bin``, else ``pg_config --bindir``, else ``postgres`` on PATH.
- A throwaway cluster: ``initdb`` into a private temporary directory (mode 0700) that also holds
  the Unix socket, so nothing touches the system's clusters, ``/var/run/postgresql`` or port 5432.
- ``initdb`` and ``postgres`` refuse to run as root, so under root they run as the ``postgres``
  system user that the Debian package creates, and the temporary directory belongs to it.
- The server listens on a free port on 127.0.0.1 only and accepts one role, ``borderlane``,
  with a generated password (SCRAM); the URL carries the password.
- ``postgres`` is our direct child (not daemonized by ``pg_ctl``) with a parent-death signal, so
  it cannot outlive a test run that is killed; ``stop()`` asks it for a fast shutdown, the signal
  ``pg_ctl stop -m fast`` would send, and waits for it to exit. ``stop(keep=True)`` then
  ``restart()`` is a database outage: the server comes back on the same data and port.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL

from provisioning.broker import free_port

SUPERUSER = "borderlane"
"""The one role in a test cluster: it owns every database the harness creates."""

SYSTEM_USER = "postgres"
"""Who runs the server when we are root (created by Debian's postgresql-common)."""

FAST_SETTINGS: dict[str, str] = {
    # Test settings only: a crash (of the machine, not of PostgreSQL) may lose or corrupt data.
    # A test database lives for one test, so nothing is lost that anyone would want back.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
"""Settings that trade durability for speed: for tests, never for a benchmark of the console."""

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_INSTALL_HINT = "apt-get install postgresql, or run scripts/system-packages.sh"
_database_numbers = itertools.count(1)


class PostgresError(Exception):
    """The server could not be found, initialised or started; the message says why."""


class _PortTaken(PostgresError):
    """The server could not bind its port: someone took it after we found it free."""


def find_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``postgres``, or :class:`PostgresError`.

    Debian keeps the server binaries out of PATH in ``/usr/lib/postgresql/<version>/bin`` (several
    versions can be installed side by side during an upgrade); the newest one wins. Other systems
    put them where ``pg_config --bindir`` says, or on PATH.
    """
    candidates: list[Path] = []
    if _DEBIAN_ROOT.is_dir():
        versions = [p for p in _DEBIAN_ROOT.iterdir() if p.name.replace(".", "").isdigit()]
        versions.sort(key=lambda p: tuple(int(part) for part in p.name.split(".")), reverse=True)
        candidates += [version / "bin" for version in versions]
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(bindir))
    if postgres := shutil.which("postgres"):
        candidates.append(Path(postgres).resolve().parent)
    for candidate in candidates:
        if not _missing_binaries(candidate):
            return candidate
    raise PostgresError(f"no PostgreSQL server binaries (initdb, postgres) found; {_INSTALL_HINT}")


def _missing_binaries(bin_dir: Path) -> list[str]:
    return [name for name in ("initdb", "postgres") if not os.access(bin_dir / name, os.X_OK)]


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary directory, on a free loopback port.

    *durable* keeps PostgreSQL's production defaults (fsync, synchronous commit), which is what a
    benchmark must measure; ``durable=False`` applies :data:`FAST_SETTINGS` and skips initdb's
    final sync, which is what tests want. *settings* are further ``postgresql.conf`` parameters.

    *bin_dir* overrides :func:`find_bin_dir`; *port* a fixed port instead of a free one.
    *directory* is where the temporary directory is made (default: the system's temp dir); under
    root the ``postgres`` user must be able to reach it, which ``/tmp`` allows.

    *cluster* instead keeps the cluster in that directory across runs (a benchmark's database
    made once and reused): ``start()`` initialises it only when it holds no cluster yet, its
    password is kept there (``password``, mode 0600), and ``stop()`` never deletes it.

    The server must be started and stopped from the same thread: the parent-death signal that
    stops it if we die fires when the *thread* that started it exits.
    """

    def __init__(
        self,
        bin_dir: Path | str | None = None,
        *,
        durable: bool = True,
        settings: dict[str, str] | None = None,
        port: int | None = None,
        directory: Path | str | None = None,
        cluster: Path | str | None = None,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir is not None else find_bin_dir()
        if missing := _missing_binaries(self.bin_dir):
            raise PostgresError(
                f"{self.bin_dir} has no PostgreSQL server ({', '.join(missing)} missing); "
                + _INSTALL_HINT
            )
        self.durable = durable
        self.settings = {**({} if durable else FAST_SETTINGS), **(settings or {})}
        self.host = "127.0.0.1"
        self.port = port or 0
        self._fixed_port = port is not None
        self._parent = Path(directory) if directory is not None else None
        self._cluster = Path(cluster).resolve() if cluster is not None else None
        self.user = SUPERUSER
        # token_urlsafe: letters, digits, '-' and '_', so the password never needs URL quoting.
        self.password = secrets.token_urlsafe(24)
        if self._cluster is not None and (self._cluster / "password").is_file():
            self.password = (self._cluster / "password").read_text().strip()
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: BinaryIO | None = None
        self._run_as = self._system_user() if os.geteuid() == 0 else None

    # -- where things are ---------------------------------------------------------------------

    @property
    def data_directory(self) -> Path:
        return self._require_directory() / "data"

    @property
    def log_file(self) -> Path:
        return self._require_directory() / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for *database*: ``postgresql+psycopg://borderlane:…@127.0.0.1:…/db``."""
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def connect(self, database: str = "postgres", **options: Any) -> psycopg.Connection:
        """A plain psycopg connection to *database* as the superuser (for checks and admin)."""
        options.setdefault("connect_timeout", 5)
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            **options,
        )

    # -- databases ----------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create an empty database *name* and return its SQLAlchemy URL.

        A copy of ``template1``: a few tens of milliseconds, cheap enough for one per test.
        """
        with self.connect(autocommit=True) as admin:  # CREATE DATABASE cannot run in a transaction
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop *name* if it exists, ending any sessions still connected to it (``FORCE``).

        A test that leaked a connection or an engine must not make the next test's drop hang.
        """
        with self.connect(autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Initialise the cluster and start the server; return once it accepts connections.

        A server that cannot start raises :class:`PostgresError` with the end of its log, and
        leaves nothing behind (no process, no temporary directory).
        """
        if self.running:
            return
        try:
            self._make_directory()
            if not (self.data_directory / "PG_VERSION").is_file():
                self._initdb()
            # A free port can be taken by someone else between our probe and the server's bind;
            # then pick another (unless the caller fixed the port).
            for attempt in itertools.count(1):
                if not self._fixed_port:
                    self.port = free_port(self.host)
                try:
                    self._run_postmaster(timeout)
                    return
                except _PortTaken:
                    if self._fixed_port or attempt == 3:
                        raise
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0, *, keep: bool = False) -> None:
        """Stop the server (fast shutdown: sessions ended, checkpoint) and delete the cluster.

        *keep*: keep the cluster (data directory, log, port) for :meth:`restart`, as a database
        server that is shut down and comes back keeps its data.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown, what `pg_ctl stop -m fast` sends; SIGQUIT
            # ("immediate", no checkpoint) and then SIGKILL only if it does not finish in time.
            escalation = ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, None))
            for sig, wait in escalation:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
                try:
                    process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self.directory is not None and not keep and self._cluster is None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def restart(self, timeout: float = 30.0) -> None:
        """Start the server again on the same cluster and port (after ``stop(keep=True)``; a
        running server gets a fast shutdown first); return once it accepts connections.

        Clients keep their URL: every committed row is there again. A server that cannot come
        back (its port was taken meanwhile...) raises :class:`PostgresError` and is deleted.
        """
        if self.directory is None or not self.data_directory.is_dir():
            raise PostgresError("nothing to restart: the server was not started, or was deleted")
        self.stop(timeout, keep=True)
        try:
            self._run_postmaster(timeout)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        """The server's log so far (its stderr)."""
        if self.directory is None:
            return ""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _log_since(self, offset: int) -> str:
        return self.log_file.read_bytes()[offset:].decode(errors="replace")

    def _system_user(self) -> pwd.struct_passwd:
        try:
            return pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresError(
                f"running as root, and there is no '{SYSTEM_USER}' user to run the server as "
                f"(initdb refuses root); {_INSTALL_HINT}"
            ) from None

    def _require_directory(self) -> Path:
        if self.directory is None:
            raise PostgresError("the server has not been started")
        return self.directory

    def _make_directory(self) -> None:
        # mkdtemp makes it 0700; under root it is handed to the postgres user, who must own the
        # data directory (the server checks) and the socket directory.
        if self._cluster is not None:
            self._cluster.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._cluster.chmod(0o700)
            self.directory = self._cluster
        else:
            self.directory = Path(tempfile.mkdtemp(prefix="borderlane-pg-", dir=self._parent))
        if self._run_as is not None:
            os.chown(self.directory, self._run_as.pw_uid, self._run_as.pw_gid)

    def _command(self, program: str, *args: str, pdeathsig: bool = False) -> list[str]:
        """*program* from the bin dir, as the postgres user under root, dying with us if asked."""
        prefix: list[str] = []
        if self._run_as is not None or pdeathsig:
            if not shutil.which("setpriv"):
                raise PostgresError("setpriv (util-linux) is needed to run PostgreSQL here")
            prefix = ["setpriv"]
            if self._run_as is not None:
                prefix += [f"--reuid={self._run_as.pw_uid}", f"--regid={self._run_as.pw_gid}"]
                prefix += ["--init-groups"]
            if pdeathsig:
                # SIGINT: a fast shutdown. setpriv sets it after switching user (a later change
                # of credentials would clear it), and postgres keeps it across exec.
                prefix += ["--pdeathsig", "INT"]
            prefix.append("--")
        return [*prefix, str(self.bin_dir / program), *args]

    def _environment(self) -> dict[str, str]:
        # PG* variables of the caller (PGDATA, PGPORT, PGHOST...) must not steer our cluster.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        if self._run_as is not None:
            env.update(HOME=self._run_as.pw_dir, USER=SYSTEM_USER, LOGNAME=SYSTEM_USER)
        return env

    def _give_to_server(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _initdb(self) -> None:
        directory = self._require_directory()
        password_file = directory / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        self._give_to_server(password_file)
        args = [
            f"--pgdata={self.data_directory}",
            f"--username={self.user}",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            # C collation: text sorts by code point, as SQLite does, so a query orders rows the
            # same on both backends and does not depend on the machine's locale.
            "--locale=C",
            "--no-instructions",
        ]
        if not self.durable:
            args.append("--no-sync")  # a cluster that lives for one test run need not hit disk
        try:
            result = subprocess.run(
                self._command("initdb", *args),
                cwd=directory,  # the postgres user may not be allowed into our working directory
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            if self._cluster is None:  # a kept cluster keeps its password for the next run
                password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed with {result.returncode}: {_tail(result.stdout + result.stderr)}"
            )
        # Only password logins, only over loopback and the private socket: what initdb wrote
        # also allows ::1, which we do not listen on; say exactly what we mean.
        (self.data_directory / "pg_hba.conf").write_text(
            "# Written by tests/harness/postgres.py.\n"
            "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
            "local   all       all                 scram-sha-256\n"
            "host    all       all   127.0.0.1/32  scram-sha-256\n"
        )

    def _run_postmaster(self, timeout: float) -> None:
        directory = self._require_directory()
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(directory),
            **self.settings,
        }
        args = ["-D", str(self.data_directory)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        if self._log_handle is not None:
            self._log_handle.close()
        # Opened by us (root or not) and inherited: the server only writes to the descriptor.
        self._log_handle = open(self.log_file, "ab")  # noqa: SIM115 (closed in stop())
        log_start = self._log_handle.tell()  # this attempt's part of the log
        self._process = subprocess.Popen(
            self._command("postgres", *args, pdeathsig=True),
            cwd=directory,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches pytest, which then stops the
            # server in order, instead of reaching the server directly.
            start_new_session=True,
        )
        # Ready when postmaster.pid says so (what `pg_ctl start -w` waits for): by then it has
        # bound its sockets. Connecting earlier could reach whoever else holds the port and hang
        # there; once ready, one connection proves our password works over TCP.
        deadline = time.monotonic() + timeout
        while not self._postmaster_ready():
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                log = self._log_since(log_start)
                error = _PortTaken if "could not bind" in log else PostgresError
                raise error(f"postgres exited with {code}: {_tail(log)}")
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"postgres was not ready within {timeout}s: {_tail(self._log_since(log_start))}"
                )
            time.sleep(0.02)
        try:
            with self.connect() as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError as error:
            reason = str(error).strip().splitlines()[0]
            raise PostgresError(
                f"postgres is running but refused us on {self.host}:{self.port}: {reason}"
            ) from None

    def _postmaster_ready(self) -> bool:
        try:
            lines = (self.data_directory / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        # Line 8 is the postmaster's status: "starting", "ready", "stopping" or "standby".
        return len(lines) >= 8 and lines[7].strip() == "ready"


def _tail(text: str, lines: int = 5) -> str:
    """The last *lines* non-empty lines of *text*, on one line."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) or "no output"


def _database_name(test_name: str) -> str:
    """A database name that says which test it belongs to: ``t12_test_x_sqlite``.

    PostgreSQL identifiers are at most 63 bytes; the counter keeps truncated names unique.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")
    return f"t{next(_database_numbers)}_{slug}"[:63]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, with :data:`FAST_SETTINGS` (test settings)."""
    server = PostgresServer(durable=False)
    server.start()  # a server that cannot start raises PostgresError: the tests fail with it
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database for this test (SQLAlchemy URL), dropped afterwards."""
    name = _database_name(request.node.name)
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]
)
def console_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the console keeps its data, once per backend: what ``--db`` would be given.

    ``[sqlite]``: a path ``<tmp_path>/console.db`` (not yet created). ``[postgresql]``: the URL
    of a fresh database. ``postgres_url`` is asked for only here, at run time, so selecting only
    ``[sqlite]`` tests never starts PostgreSQL.
    """
    if request.param == "sqlite":
        return str(tmp_path / "console.db")
    return request.getfixturevalue("postgres_url")

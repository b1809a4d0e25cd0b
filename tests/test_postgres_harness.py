"""The PostgreSQL test harness itself (tests/harness/postgres.py): who runs the server, where it
listens, that each test's database is its own, and that nothing outlives ``stop()``."""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from harness.postgres import SUPERUSER, SYSTEM_USER, PostgresError, PostgresServer

TESTS = Path(__file__).resolve().parent


def _uids(pid: int) -> set[int]:
    """Real, effective, saved and filesystem uid of *pid*, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError(f"no Uid line for {pid}")


def _children(pid: int) -> list[int]:
    """Processes whose parent is *pid* (the postmaster's checkpointer, walwriter, backends...)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Field 4 is the parent pid; field 2, the name in parentheses, may contain spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state that process *pid* holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    listening = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: TCP_LISTEN
                continue
            address_hex, port_hex = local.split(":")
            # /proc/net/tcp prints each 32-bit word of the address in host (little-endian) order.
            packed = b"".join(
                bytes.fromhex(address_hex[i : i + 8])[::-1] for i in range(0, len(address_hex), 8)
            )
            listening.append((socket.inet_ntop(family, packed), int(port_hex, 16)))
    return listening


def _tables(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_the_server_runs_as_an_unprivileged_user(postgres_server: PostgresServer) -> None:
    # initdb and postgres refuse root; under root the harness runs them as the postgres user.
    expected = pwd.getpwnam(SYSTEM_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert expected != 0
    assert _uids(postgres_server.pid) == {expected}
    with postgres_server.connect() as connection:
        row = connection.execute("SELECT current_setting('data_directory')").fetchone()
    data_directory = row[0]
    assert Path(data_directory) == postgres_server.data_directory
    for private in (Path(data_directory), postgres_server.directory):
        assert private.stat().st_uid == expected
        assert private.stat().st_mode & 0o777 == 0o700


def test_the_server_listens_on_loopback_only(postgres_server: PostgresServer) -> None:
    assert _listening_addresses(postgres_server.pid) == [("127.0.0.1", postgres_server.port)]
    with postgres_server.connect() as connection:
        socket_directory = connection.execute("SHOW unix_socket_directories").fetchone()[0]
    assert Path(socket_directory) == postgres_server.directory  # private, not /var/run/postgresql


def test_a_wrong_password_is_refused(postgres_server: PostgresServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=SUPERUSER,
            password="not-the-password",
            dbname="postgres",
        )


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_empty_database(
    postgres_url: str, postgres_server: PostgresServer, run: int
) -> None:
    # Both runs create the same table: the second would fail if it saw the first one's database.
    url = make_url(postgres_url)
    assert (url.drivername, url.host) == ("postgresql+psycopg", "127.0.0.1")
    assert (url.port, url.username) == (postgres_server.port, SUPERUSER)
    assert url.database.endswith(f"_fresh_empty_database_{run}")  # named after the test
    assert _tables(postgres_url) == []
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("CREATE TABLE crossings (run int PRIMARY KEY)"))
            connection.execute(sqlalchemy.text("INSERT INTO crossings VALUES (:run)"), {"run": run})
    finally:
        engine.dispose()
    assert _tables(postgres_url) == ["crossings"]


def test_two_databases_do_not_see_each_others_tables(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database("harness_first")
    second = postgres_server.create_database("harness_second")
    try:
        with postgres_server.connect("harness_first") as a:
            a.execute("CREATE TABLE acks (id text)")
        assert _tables(first) == ["acks"]
        assert _tables(second) == []
        with (
            postgres_server.connect("harness_second") as b,
            pytest.raises(psycopg.errors.UndefinedTable),
        ):
            b.execute("SELECT * FROM acks")
    finally:
        postgres_server.drop_database("harness_first")
        postgres_server.drop_database("harness_second")


def test_dropping_a_database_ends_connections_still_open(postgres_server: PostgresServer) -> None:
    # What the postgres_url fixture relies on when a test leaks a connection or an engine.
    postgres_server.create_database("harness_leaky")
    leaked = postgres_server.connect("harness_leaky")
    try:
        postgres_server.drop_database("harness_leaky")
        with postgres_server.connect() as admin:
            names = [row[0] for row in admin.execute("SELECT datname FROM pg_database")]
        assert "harness_leaky" not in names
        with pytest.raises(psycopg.OperationalError):
            leaked.execute("SELECT 1")
    finally:
        leaked.close()


def test_console_db_is_a_path_or_a_url_per_backend(
    console_db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    backend = request.node.callspec.id
    if backend == "sqlite":
        assert console_db == str(tmp_path / "console.db")  # a plain path, as `--db` accepts
    else:
        assert backend == "postgresql"
        assert make_url(console_db).drivername == "postgresql+psycopg"
        assert _tables(console_db) == []


def test_selecting_only_sqlite_never_starts_postgres(tmp_path: Path) -> None:
    # A separate pytest session, so "started" means started by that session and nothing else.
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["harness.postgres"]\n')
    (tmp_path / "test_inner.py").write_text("def test_store(console_db):\n    assert console_db\n")

    pytest_command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--setup-show"]

    def inner(selection: str) -> str:
        result = subprocess.run(
            [*pytest_command, "-k", selection, str(tmp_path)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(TESTS)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "postgres_server" not in inner("sqlite")
    assert "SETUP    S postgres_server" in inner("postgresql")  # the check above can see it


def test_a_default_server_is_durable_and_stop_leaves_nothing_behind() -> None:
    server = PostgresServer()  # not the session's: this one is stopped by the test
    server.start()
    try:
        with server.connect() as connection:
            settings = {
                name: connection.execute(f"SHOW {name}").fetchone()[0]
                for name in ("fsync", "synchronous_commit", "full_page_writes")
            }
        assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        postmaster, directory, port = server.pid, server.directory, server.port
        processes = [postmaster, *_children(postmaster)]
        assert len(processes) > 1  # checkpointer, walwriter...: the check below is not vacuous
    finally:
        server.stop()

    assert not server.running
    assert [pid for pid in processes if Path(f"/proc/{pid}").exists()] == []
    assert not directory.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_a_missing_bin_dir_is_named_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(PostgresError) as raised:
        PostgresServer(tmp_path / "no-such-bin")
    message = str(raised.value)
    assert "\n" not in message
    assert str(tmp_path / "no-such-bin") in message
    assert "initdb, postgres missing" in message


def test_server_binaries_that_fail_stop_start_with_their_output() -> None:
    # A bin dir whose initdb fails, readable by the postgres user (pytest's tmp_path is private
    # to root when we are root, so the server user could not even run the script there).
    with tempfile.TemporaryDirectory() as bin_dir:
        os.chmod(bin_dir, 0o755)
        for name in ("initdb", "postgres"):
            script = Path(bin_dir) / name
            script.write_text("#!/bin/sh\necho 'first line' >&2\necho 'disk on fire' >&2\nexit 3\n")
            script.chmod(0o755)
        server = PostgresServer(bin_dir)
        with pytest.raises(PostgresError) as raised:
            server.start()
    assert str(raised.value) == "initdb failed with 3: first line | disk on fire"
    assert server.directory is None  # the temporary cluster directory is gone


def test_a_fixed_port_already_taken_fails_start_with_the_reason() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = PostgresServer(durable=False, port=squatter.getsockname()[1])
        with pytest.raises(PostgresError, match="Address already in use") as raised:
            server.start()
    assert str(raised.value).startswith("postgres exited with 1: ")
    assert "\n" not in str(raised.value)
    assert server.directory is None and not server.running


def test_a_kept_cluster_comes_back_with_its_data_and_password() -> None:
    # What the console benchmark does with its 10M database: made once in a chosen directory,
    # then started on a free port by later runs. The parent must be reachable by the postgres
    # user when we are root (pytest's tmp_path is private to root).
    with tempfile.TemporaryDirectory() as parent:
        os.chmod(parent, 0o755)
        cluster = Path(parent) / "cluster"
        first = PostgresServer(durable=False, cluster=cluster)
        first.start()
        try:
            url = first.create_database("kept")
            engine = sqlalchemy.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text("CREATE TABLE t (n int)"))
                conn.execute(sqlalchemy.text("INSERT INTO t VALUES (42)"))
            engine.dispose()
        finally:
            first.stop()  # even without keep: a chosen cluster is never deleted
        assert (cluster / "data" / "PG_VERSION").is_file()

        second = PostgresServer(durable=False, cluster=cluster)
        assert second.password == first.password
        second.start()
        try:
            with second.connect("kept") as conn:
                assert conn.execute("SELECT n FROM t").fetchone() == (42,)
        finally:
            second.stop(keep=True)
        assert not second.running and (cluster / "data").is_dir()

"""The console's commands share one definition of the broker options: a value that cannot be
used is one ``Error:`` line naming the option, exit status 2, before anything connects."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from console.cli import cli

COMMANDS = [
    ["ingest", "--db", "console.db"],
    ["command", "send", "--device", "kiosk-bz-01", "ping"],
    ["watchlist", "serve", "--db", "console.db", "--signing-key", "wl.pem", "--key-id", "wl-1"],
]


@pytest.fixture
def files(tmp_path, monkeypatch, broker):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wl.pem").write_text("not a key")
    (tmp_path / "not-a-cert.pem").write_text("hello")
    identity = broker.identity("console")
    return broker.ca.cert_path, identity.cert_path, identity.key_path


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(
    "broker_address, cert, option",
    [
        ("127.0.0.1:99999", None, "--broker"),
        ("127.0.0.1:8883", "not-a-cert.pem", "--cert"),
    ],
)
def test_bad_broker_options_are_one_line_naming_the_option(
    files, command, broker_address, cert, option
):
    cafile, good_cert, key = files
    args = [*command, "--broker", broker_address, "--cafile", str(cafile)]
    args += ["--cert", str(cert or good_cert), "--key", str(key)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {option}:"), result.output

"""The PC/SC test stack on real components: pyscard -> libpcsclite -> pcscd -> vpcd -> our card.

Nothing is mocked: if pcscd, the vpcd driver, the socket wiring or the card's vpcd protocol is
broken, these tests fail. Slot 0 holds one card for the whole module (pcscd notices insertions
only on its ~400 ms presence poll); tests that insert and remove cards use slot 1.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import reduce
from pathlib import Path

import pytest
from smartcard.ATR import ATR
from smartcard.CardConnection import CardConnection
from smartcard.System import readers

from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord
from edge.sim.cards import DEMO_AID, IsoCard
from edge.sim.pcscd import DEFAULT_FRIENDLY_NAME, SYSTEM_SOCKET_DIR, PcscStack, PcscStackError
from edge.sim.vpcd import VpcdClient
from harness.pcsc import card_in_reader, wait_for_card

ICAO_AID = bytes.fromhex("A0000002471001")


@contextmanager
def connected(reader_name: str) -> Iterator[CardConnection]:
    """A pyscard connection to the card in ``reader_name``, as the kiosk's driver will open it."""
    (reader,) = [r for r in readers() if str(r) == reader_name]
    connection = reader.createConnection()
    connection.connect()
    try:
        yield connection
    finally:
        connection.disconnect()
        connection.release()


def send(connection: CardConnection, command: CommandApdu | str) -> ResponseApdu:
    raw = command.to_bytes() if isinstance(command, CommandApdu) else bytes.fromhex(command)
    data, sw1, sw2 = connection.transmit(list(raw))
    return ResponseApdu(bytes(data), StatusWord.from_bytes_pair(sw1, sw2))


def select(aid: bytes, *, fci: bool = False) -> CommandApdu:
    if fci:
        return CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256)
    return CommandApdu(0x00, 0xA4, 0x04, 0x0C, aid)


def get_challenge(length: int) -> CommandApdu:
    return CommandApdu(0x00, 0x84, 0x00, 0x00, le=length)


# -- the stack ---------------------------------------------------------------------------------


def test_pcscd_lists_both_vpcd_readers(pcsc_stack: PcscStack) -> None:
    names = [f"{DEFAULT_FRIENDLY_NAME} 00 00", f"{DEFAULT_FRIENDLY_NAME} 00 01"]
    assert pcsc_stack.reader_names == names
    assert set(names) <= {str(r) for r in readers()}
    assert pcsc_stack.socket_path.is_socket()
    assert pcsc_stack.env["PCSCLITE_CSOCK_NAME"] == str(pcsc_stack.socket_path)
    if pcsc_stack.isolated:  # our own daemon, not the system one
        assert pcsc_stack.socket_path.parent != SYSTEM_SOCKET_DIR


def test_a_card_inserted_is_seen_and_a_card_removed_is_seen_absent(pcsc_stack: PcscStack) -> None:
    reader = pcsc_stack.reader_names[1]
    assert wait_for_card(reader, present=False, timeout=0) == b""
    card = IsoCard()
    client = VpcdClient(card, port=pcsc_stack.vpcd_port + 1).insert()  # slot 1 = port + 1
    try:
        assert wait_for_card(reader, present=True) == card.atr
    finally:
        client.remove()
    assert not client.inserted and client.error is None
    assert wait_for_card(reader, present=False) == b""


# -- one card in slot 0, spoken to through pyscard ---------------------------------------------


@pytest.fixture(scope="module")
def iso_card(pcsc_stack: PcscStack) -> Iterator[IsoCard]:
    card = IsoCard(aids=[DEMO_AID, ICAO_AID])
    with card_in_reader(pcsc_stack, card, slot=0):
        yield card


@pytest.fixture
def connection(pcsc_stack: PcscStack, iso_card: IsoCard) -> Iterator[CardConnection]:
    with connected(pcsc_stack.reader_names[0]) as connection:
        yield connection


def test_the_card_speaks_t1_with_a_valid_atr(connection: CardConnection, iso_card: IsoCard) -> None:
    atr = bytes(connection.getATR())
    assert atr == iso_card.atr
    assert reduce(lambda acc, b: acc ^ b, atr[1:]) == 0  # TCK: T0..TCK XOR to zero
    assert ATR(list(atr)).isT1Supported()
    assert connection.getProtocol() == CardConnection.T1_protocol


def test_select_then_get_challenge(connection: CardConnection, iso_card: IsoCard) -> None:
    assert send(connection, select(DEMO_AID)) == ResponseApdu(b"", StatusWord.SUCCESS)
    assert iso_card.selected == DEMO_AID

    first = send(connection, get_challenge(8))
    assert first.sw == StatusWord.SUCCESS and len(first.data) == 8
    assert first.data == iso_card.last_challenge  # the bytes came from our card object
    second = send(connection, get_challenge(8))
    assert second.sw == StatusWord.SUCCESS and second.data != first.data

    longest = send(connection, "0084000000")  # Le 00: 256 bytes
    assert (longest.sw, len(longest.data)) == (StatusWord.SUCCESS, 256)


def test_select_with_fci(connection: CardConnection) -> None:
    response = send(connection, select(ICAO_AID, fci=True))
    assert response.sw == StatusWord.SUCCESS
    assert response.data == bytes((0x6F, 9, 0x84, 7)) + ICAO_AID


def test_an_unknown_aid_gives_6a82_and_keeps_the_selection(
    connection: CardConnection, iso_card: IsoCard
) -> None:
    send(connection, select(ICAO_AID)).check()
    assert send(connection, select(bytes.fromhex("A000000003000000"))).sw == 0x6A82
    assert iso_card.selected == ICAO_AID


@pytest.mark.parametrize(
    ("command", "sw"),
    [
        ("00CA9F7F00", StatusWord.INS_NOT_SUPPORTED),  # GET DATA: not this card
        ("80A4040C07A0000002471001", StatusWord.CLA_NOT_SUPPORTED),
        ("00A4040C05A000", StatusWord.WRONG_LENGTH),  # Lc 5, two bytes: not an APDU
        ("00840000", StatusWord.WRONG_LENGTH),  # GET CHALLENGE without Le
        ("00A4000C023F00", StatusWord.INCORRECT_P1P2),  # SELECT by file id
    ],
    ids=["unknown INS", "unsupported CLA", "malformed", "challenge without Le", "SELECT by FID"],
)
def test_errors_come_back_as_status_words_and_the_link_survives(
    connection: CardConnection, command: str, sw: StatusWord
) -> None:
    assert send(connection, command) == ResponseApdu(b"", sw)
    assert send(connection, get_challenge(4)).sw == StatusWord.SUCCESS


# -- the CLI -----------------------------------------------------------------------------------


def sim_cli(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "borderlane-edge"), "sim", *args]


def test_cli_card_stays_inserted_until_ctrl_c(pcsc_stack: PcscStack) -> None:
    reader = pcsc_stack.reader_names[1]
    port = str(pcsc_stack.vpcd_port + 1)
    cli = subprocess.Popen(
        sim_cli("card", "--port", port, "--aid", ICAO_AID.hex()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_card(reader, present=True, timeout=10) == IsoCard.ATR
        with connected(reader) as connection:
            assert send(connection, select(ICAO_AID)).sw == StatusWord.SUCCESS
            assert send(connection, select(DEMO_AID)).sw == StatusWord.FILE_NOT_FOUND
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=10)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err
    assert f"card inserted into vpcd at 127.0.0.1:{port}" in out
    assert "card removed" in out
    wait_for_card(reader, present=False)


def test_cli_says_in_one_line_when_vpcd_is_not_listening() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    result = subprocess.run(
        sim_cli("card", "--port", str(port)), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: vpcd is not listening on 127.0.0.1:{port}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# -- starting and stopping stacks --------------------------------------------------------------


def is_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_a_stack_stops_leaving_no_process_socket_or_directory(pcsc_stack: PcscStack) -> None:
    stack = PcscStack()
    if not pcsc_stack.isolated:
        # No private namespaces here: a second daemon must be refused, not collide.
        with pytest.raises(PcscStackError, match="already serves"):
            stack.start()
        return
    with stack:
        pid = stack.pid
        assert pid is not None and is_alive(pid)
        assert stack.reader_names == pcsc_stack.reader_names  # same names, another daemon
        assert stack.vpcd_port not in (pcsc_stack.vpcd_port, pcsc_stack.vpcd_port + 1)
        socket_path, workdir = stack.socket_path, stack.workdir
    assert not is_alive(pid)
    assert not socket_path.exists() and not workdir.exists()
    with pytest.raises(PcscStackError, match="starts once"):
        stack.start()


def test_a_missing_pcscd_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PcscStackError, match=r"pcscd not installed.*apt-get install pcscd"):
        PcscStack(tmp_path, pcscd="/nonexistent/pcscd").start()
    with pytest.raises(PcscStackError, match=r"vpcd driver not installed.*vsmartcard-vpcd"):
        PcscStack(tmp_path, driver=tmp_path / "libifdvpcd.so").start()


def test_a_taken_port_is_reported_with_pcscds_reason(pcsc_stack: PcscStack) -> None:
    # the session's own vpcd holds this port; without private namespaces the socket is taken first
    if pcsc_stack.isolated:
        reason = r"could not listen on port[\s\S]*virtual ICC"
    else:
        reason = "already serves"
    with pytest.raises(PcscStackError, match=reason):
        PcscStack(port=pcsc_stack.vpcd_port).start()


def test_a_pcscd_that_dies_at_once_is_reported(pcsc_stack: PcscStack, tmp_path: Path) -> None:
    reason = "exited with status 1" if pcsc_stack.isolated else "already serves"
    with pytest.raises(PcscStackError, match=reason):
        PcscStack(tmp_path, pcscd="false").start()

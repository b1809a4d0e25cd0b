"""The serial MRZ reader driver, end to end through real pseudo-terminals, and the virtual reader.

The driver is the one that opens /dev/ttyUSB0 on a kiosk; here it opens a pty slave (or a
udev-like link to one) while the virtual reader writes what a reader's firmware would. Waits
are on the driver's state and events, with timeouts: nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import serial
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cli import cli
from edge.devices.mrz_reader import (
    Discard,
    Frame,
    LineFramer,
    MrzReader,
    MrzReaderConfig,
    MrzReaderConfigError,
    MrzReaderStatus,
    PortNotFoundError,
    StxEtxFramer,
    _Backoff,
    resolve_port,
)
from edge.documents.mrz import MrzError, parse
from edge.sim.mrz_reader import SPECIMENS, VirtualMrzReader, WireFormat, synthetic_documents
from harness.serial import MRZ_GLOB, connected_reader, fast_config, next_event

TD3, TD2, TD1 = SPECIMENS["TD3"], SPECIMENS["TD2"], SPECIMENS["TD1"]
# Every way the virtual reader can put a document on the wire.
WIRES = {
    "crlf": WireFormat("crlf"),
    "cr": WireFormat("cr"),
    "lf": WireFormat("lf"),
    "stx-etx": WireFormat("stx-etx"),
    "joined-crlf": WireFormat("crlf", joined=True),
    "joined-stx-etx": WireFormat("stx-etx", joined=True),
    "vendor-cr": WireFormat("cr", prefix=b"\x1bM", suffix=b"#END"),
    "vendor-stx-etx": WireFormat("stx-etx", prefix=b"\x1bM", suffix=b"\x17"),
}


def lines(text: str) -> tuple[str, ...]:
    return tuple(text.split("\n"))


def disconnected(state) -> bool:
    return state.status is MrzReaderStatus.DISCONNECTED


# --- framing, pure: any chunking gives the same documents -----------------------------------


def framer_for(wire: WireFormat) -> LineFramer | StxEtxFramer:
    kind = StxEtxFramer if wire.framing == "stx-etx" else LineFramer
    return kind(prefix=wire.prefix, suffix=wire.suffix)


def frames_of(framer, chunks: list[bytes]) -> list[str]:
    out = []
    for index, chunk in enumerate(chunks):
        out += framer.feed(chunk, float(index))
    out += framer.expire(float(len(chunks)))
    return [item.text.replace("\n", "") for item in out if isinstance(item, Frame)]


@settings(max_examples=150, deadline=None)
@given(
    wire=st.sampled_from(sorted(WIRES)),
    order=st.permutations([TD3, TD2, TD1]),
    garbage=st.lists(st.binary(max_size=12), min_size=3, max_size=3),
    cuts=st.sets(st.integers(min_value=1, max_value=400), max_size=40),
)
def test_any_chunking_of_documents_and_garbage_gives_the_same_documents(wire, order, garbage, cuts):
    format = WIRES[wire]
    stream = b""
    for noise, document in zip(garbage, order, strict=True):
        # Noise as a reader emits it between documents: a line of its own, or outside frames.
        if format.framing == "stx-etx":
            noise = noise.replace(b"\x02", b"")
        else:
            noise += b"\r\n"
        stream += noise + format.encode(document)
    points = sorted(c for c in cuts if c < len(stream))
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    expected = [document.replace("\n", "") for document in order]
    assert frames_of(framer_for(format), chunks) == expected


def test_a_td1s_first_two_lines_are_not_a_document():
    framer = LineFramer()
    first, second, third = (line.encode() + b"\r" for line in lines(TD1))
    assert framer.feed(first + second, 0.0) == []
    assert framer.pending
    [frame] = framer.feed(third, 0.1)
    assert frame.text == TD1
    assert (frame.first_byte_at, frame.last_byte_at) == (0.0, 0.1)


def test_a_stray_line_from_an_aborted_read_does_not_take_the_next_document():
    line1, line2 = (line.encode() + b"\n" for line in lines(TD3))
    out = LineFramer().feed(line1 + line1 + line2, 0.0)  # the first swipe stopped after line 1
    assert [type(item) for item in out] == [Discard, Frame]
    assert out[1].text == TD3
    td1 = [line.encode() + b"\n" for line in lines(TD1)]
    out = LineFramer().feed(td1[1] + td1[2] + b"".join(td1), 0.0)  # an aborted TD1 tail
    assert [item.text for item in out if isinstance(item, Frame)] == [TD1]


def test_a_last_line_without_terminator_completes_when_the_reader_goes_quiet():
    framer = LineFramer()
    assert framer.feed(TD3.replace("\n", "\r\n").encode(), 0.0) == []
    [frame] = framer.expire(0.5)
    assert frame.text == TD3


def test_noise_glued_before_a_line_is_cut_off_and_counted():
    framer = LineFramer()
    [frame] = framer.feed(b"\xff\x00~~" + TD3.replace("\n", "\r").encode() + b"\r", 0.0)
    assert frame.text == TD3
    assert framer.garbage_bytes == 4


def test_buffers_are_bounded_whatever_the_reader_sends():
    framer = LineFramer()
    framer.feed(b"A" * 100_000, 0.0)
    assert framer.garbage_bytes >= 100_000 - 300
    assert [f.text for f in framer.feed(b"\r\n" + TD1.encode() + b"\n", 0.1)] == [TD1]
    frames = StxEtxFramer()
    out = frames.feed(b"\x02" + b"B" * 100_000, 0.0)
    assert [type(item) for item in out] == [Discard]
    assert [f.text for f in frames.feed(b"\x03\x02" + TD2.encode() + b"\x03", 0.1)] == [TD2]


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("port", {"port": ""}),
        ("port", {"port": "ttyUSB0"}),
        ("baudrate", {"baudrate": 0}),
        ("bytesize", {"bytesize": 9}),
        ("parity", {"parity": "X"}),
        ("stopbits", {"stopbits": 3}),
        ("framing", {"framing": "xml"}),
        ("prefix", {"prefix": b"\r"}),
        ("suffix", {"framing": "stx-etx", "suffix": b"\x03"}),
        ("prefix", {"prefix": "1B"}),
        ("prefix", {"prefix": b"x" * 33}),
        ("document_timeout", {"document_timeout": 0}),
        ("reconnect_max", {"reconnect_initial": 2.0, "reconnect_max": 1.0}),
        ("presence_interval", {"presence_interval": -1}),
        ("queue_size", {"queue_size": 0}),
    ],
)
def test_a_bad_setting_is_refused_naming_its_field(field, overrides):
    with pytest.raises(MrzReaderConfigError) as caught:
        MrzReaderConfig(**{"port": "/dev/ttyUSB0", **overrides})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_config_from_a_file_table_takes_hex_and_refuses_unknown_keys():
    config = MrzReaderConfig.from_dict(
        {"port": "0403:6001", "framing": "stx-etx", "prefix": "1b4d", "baudrate": 115200}
    )
    assert (config.prefix, config.framing, config.baudrate) == (b"\x1bM", "stx-etx", 115200)
    with pytest.raises(MrzReaderConfigError, match=r"^baud: unknown setting"):
        MrzReaderConfig.from_dict({"port": "/dev/ttyUSB0", "baud": 9600})
    with pytest.raises(MrzReaderConfigError, match=r"^suffix: 'zz' is not hex"):
        MrzReaderConfig.from_dict({"port": "/dev/ttyUSB0", "suffix": "zz"})


def test_ports_resolve_by_path_glob_or_usb_id(tmp_path):
    assert resolve_port("/dev/ttyUSB7") == "/dev/ttyUSB7"
    (tmp_path / "usb-Acme_MRZ-if01").symlink_to(tmp_path / "gone")  # udev link left dangling
    (tmp_path / "usb-Acme_MRZ-if02").touch()
    assert resolve_port(str(tmp_path / "usb-*MRZ*")) == str(tmp_path / "usb-Acme_MRZ-if02")
    ports = [
        SimpleNamespace(device="/dev/ttyUSB1", vid=0x0403, pid=0x6001),
        SimpleNamespace(device="/dev/ttyACM0", vid=0x1A86, pid=0x7523),
        SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None),
    ]
    assert resolve_port("1a86:7523", comports=lambda: ports) == "/dev/ttyACM0"
    assert resolve_port("usb:0403:6001", comports=lambda: ports) == "/dev/ttyUSB1"
    with pytest.raises(PortNotFoundError, match="no serial port with USB id 0403:6002"):
        resolve_port("0403:6002", comports=lambda: ports)


def test_backoff_grows_with_jitter_up_to_its_cap_and_starts_over():
    backoff = _Backoff(0.1, 1.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, cap in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0], strict=True):
        assert cap / 2 <= delay <= cap
    assert len(set(delays[4:])) == 4  # jittered, not periodic
    backoff.reset()
    assert backoff.next_delay() <= 0.1


# --- through a real pty ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", sorted(WIRES))
async def test_every_framing_delivers_each_format_parsed(mrz_sim, wire):
    sim = mrz_sim(**vars(WIRES[wire]))
    async with connected_reader(sim) as reader:
        for specimen in (TD3, TD2, TD1):
            sim.send(specimen)
            event = await next_event(reader)
            assert event.ok, event.error
            assert event.document.lines == lines(specimen)
            assert event.document.valid
            assert event.port == sim.device
            assert event.first_byte_at <= event.last_byte_at <= event.emitted_at
            assert b"\x1bM" not in event.text.encode()
        assert reader.state.documents_read == 3
        assert reader.state.garbage_bytes == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("wire", ["crlf", "cr", "lf", "stx-etx", "joined-crlf", "vendor-cr"])
async def test_a_read_split_at_any_byte_is_reassembled(mrz_sim, wire):
    sim = mrz_sim(**vars(WIRES[wire]))
    async with connected_reader(sim) as reader:
        received = 0
        for specimen in (TD1, TD3):
            data = sim.wire.encode(specimen)
            for cut in range(1, len(data)):
                sim.write(data[:cut])
                received += cut
                # The first part is read on its own before the second is written.
                await reader.wait_state(lambda s, n=received: s.bytes_received >= n, 2)
                sim.write(data[cut:])
                received += len(data) - cut
                event = await next_event(reader)
                assert event.document.lines == lines(specimen), f"split at {cut}"
        assert reader.state.documents_discarded == 0


@pytest.mark.asyncio
async def test_garbage_before_between_and_after_documents_loses_none(mrz_sim):
    sim = mrz_sim(framing="crlf")
    crlf = WIRES["crlf"].encode
    async with connected_reader(sim) as reader:
        sim.write(bytes(range(256)) + b"\r\n")  # binary, with CRs and LFs of its own
        sim.write(b"OK READY\r\n" + crlf(TD3))
        sim.write(b"Z" * 5000 + b"\r\n")  # overlong line, no document in it
        sim.write(b"\x00\xfe\x80" + crlf(TD1))  # noise glued to the first line
        sim.write(crlf(TD3).split(b"\r\n")[0] + b"\r\n" + crlf(TD2))  # an aborted swipe first
        sim.write(b"\x1b[0m garbage after\r\n")
        events = [await next_event(reader) for _ in range(3)]
        assert [e.document.lines for e in events] == [lines(TD3), lines(TD1), lines(TD2)]
        state = await reader.wait_state(lambda s: s.garbage_bytes >= 5000, 2)
        assert state.status is MrzReaderStatus.CONNECTED
        assert state.documents_discarded == 1  # the aborted swipe


@pytest.mark.asyncio
async def test_garbage_around_stx_etx_frames_loses_none(mrz_sim):
    sim = mrz_sim(framing="stx-etx")
    frame = WIRES["stx-etx"].encode
    async with connected_reader(sim) as reader:
        sim.write(b"\x03\xff\x00noise" + frame(TD1) + b"\x02half a frame" + frame(TD3) + b"~~")
        assert (await next_event(reader)).document.lines == lines(TD1)
        assert (await next_event(reader)).document.lines == lines(TD3)
        assert reader.state.documents_discarded == 1  # restarted by the next STX


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "half",
    [
        b"P<UTOERIKSSON<<ANN",  # mid-line
        TD3.encode().split(b"\n")[0] + b"\r\nL898902C36UTO74",  # mid second line
        b"\r\n".join(TD1.encode().split(b"\n")[:2]) + b"\r\n",  # a TD1's first two lines
    ],
    ids=["mid-line", "mid-second-line", "td1-two-lines"],
)
async def test_a_half_document_is_discarded_after_the_timeout_never_emitted(mrz_sim, half):
    sim = mrz_sim(framing="crlf")
    async with connected_reader(sim, document_timeout=0.05) as reader:
        sim.write(half)
        state = await reader.wait_state(lambda s: s.documents_discarded == 1, 2)
        assert state.documents_read == 0
        sim.send(TD3)
        event = await next_event(reader)
        assert event.document.lines == lines(TD3)
        assert event.raw == WIRES["crlf"].encode(TD3)[:-1]  # up to the CR that completed it


@pytest.mark.asyncio
async def test_a_failing_check_digit_is_emitted_as_read_with_valid_false(mrz_sim):
    sim = mrz_sim()
    async with connected_reader(sim) as reader:
        sim.send(TD3[:-1] + "9")  # the composite check digit
        event = await next_event(reader)
        assert event.ok
        assert event.document.valid is False
        assert event.document.checks["composite"] is False


@pytest.mark.asyncio
async def test_text_that_is_not_an_mrz_is_an_error_event_not_a_crash(mrz_sim):
    sim = mrz_sim(framing="stx-etx")
    async with connected_reader(sim) as reader:
        sim.write(b"\x02NO READ\r\x03\x02P<UTO\xe9\xff\x03")
        for _ in range(2):
            event = await next_event(reader)
            assert event.document is None
            assert isinstance(event.error, MrzError)
        sim.send(TD2)
        assert (await next_event(reader)).document.lines == lines(TD2)
        assert (reader.state.parse_errors, reader.state.documents_read) == (2, 1)


@pytest.mark.asyncio
async def test_a_parser_bug_becomes_an_error_event_and_reading_goes_on(mrz_sim):
    calls = []

    def flaky_parse(text):
        calls.append(text)
        if len(calls) == 1:
            raise KeyError("bug")
        return parse(text)

    sim = mrz_sim()
    async with MrzReader(fast_config(sim.device), parse=flaky_parse) as reader:
        await reader.wait_connected(2)
        sim.send(TD1)
        sim.send(TD1)
        assert isinstance((await next_event(reader)).error, KeyError)
        assert (await next_event(reader)).ok


@pytest.mark.asyncio
async def test_unplug_then_replug_under_a_new_name_matched_by_the_glob(mrz_sim, serial_by_id):
    sim = mrz_sim()
    async with MrzReader(fast_config(serial_by_id / MRZ_GLOB)) as reader:
        await reader.wait_connected(2)
        sim.send(TD3)
        assert (await next_event(reader)).port == str(sim.link)

        sim.unplug()  # the link goes and the pty hangs up, as udev and the kernel do
        state = await reader.wait_state(disconnected, 2)
        assert state.last_error == "EIO: Input/output error"
        assert state.port == str(serial_by_id / "usb-Acme_MRZ_Reader_0000-if00")
        state = await reader.wait_state(lambda s: "no port matches" in (s.last_error or ""), 2)

        again = mrz_sim(name="usb-Acme_MRZ_Reader_0099-if00")
        state = await reader.wait_connected(2)
        assert (state.port, state.reconnects) == (str(again.link), 1)
        again.send(TD1)
        event = await next_event(reader)
        assert (event.port, event.document.lines) == (str(again.link), lines(TD1))


@pytest.mark.asyncio
async def test_a_vanished_device_name_is_noticed_while_the_port_still_works(mrz_sim, serial_by_id):
    sim = mrz_sim()
    async with MrzReader(fast_config(serial_by_id / MRZ_GLOB)) as reader:
        await reader.wait_connected(2)
        sim.remove_link()
        state = await reader.wait_state(disconnected, 2)
        assert state.last_error == f"{serial_by_id}/usb-Acme_MRZ_Reader_0000-if00 vanished"
        assert not sim.is_open()  # the driver let go of the port it could no longer name
        sim.replug(serial_by_id / "usb-Acme_MRZ_Reader_0000-if00")
        await reader.wait_connected(2)
        sim.send(TD2)
        assert (await next_event(reader)).document.lines == lines(TD2)


@pytest.mark.asyncio
async def test_a_reader_absent_at_start_is_waited_for(mrz_sim, serial_by_id):
    async with MrzReader(fast_config(serial_by_id / MRZ_GLOB)) as reader:
        state = await reader.wait_state(disconnected, 2)
        assert state.last_error == f"ENOENT: no port matches {serial_by_id}/{MRZ_GLOB}"
        sim = mrz_sim()
        state = await reader.wait_connected(2)
        assert state.reconnects == 0  # first connection, however late
        sim.send(TD3)
        assert (await next_event(reader)).ok


@pytest.mark.asyncio
async def test_a_port_held_by_another_program_is_retried_never_shared(mrz_sim):
    sim = mrz_sim()
    terminal = serial.Serial(sim.device, exclusive=True)  # a technician's minicom
    try:
        async with MrzReader(fast_config(sim.device)) as reader:
            state = await reader.wait_state(disconnected, 2)
            assert "Could not exclusively lock port" in state.last_error
            terminal.close()
            state = await reader.wait_connected(2)
            health = json.loads(json.dumps(state.to_dict()))
            assert (health["status"], health["port"]) == ("connected", sim.device)
            assert health["since"].endswith("Z")
            sim.send(TD3)
            assert (await next_event(reader)).ok
    finally:
        terminal.close()


@pytest.mark.asyncio
async def test_cancelling_the_consumer_closes_the_port(mrz_sim):
    sim = mrz_sim()
    reader = MrzReader(fast_config(sim.device))
    connected = asyncio.Event()

    async def lane():
        async with reader:
            await reader.wait_connected(2)
            connected.set()
            async for _ in reader:
                pass

    task = asyncio.create_task(lane())
    await asyncio.wait_for(connected.wait(), 2)
    sim.write(b"P<UTOERIKSSON")  # a document in progress when the lane stops
    await reader.wait_state(lambda s: s.bytes_received == 13, 2)
    assert sim.is_open()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not sim.is_open()
    assert disconnected(reader.state)
    assert reader.state.documents_discarded == 1


@pytest.mark.asyncio
async def test_closing_the_reader_ends_iteration_in_another_task(mrz_sim):
    sim = mrz_sim()
    async with connected_reader(sim) as reader:
        consumer = asyncio.create_task(anext(reader, "ended"))
        await asyncio.sleep(0)  # let it start waiting
        await reader.aclose()
        assert await asyncio.wait_for(consumer, 2) == "ended"
        assert not sim.is_open()


@pytest.mark.asyncio
async def test_a_consumer_that_falls_behind_gets_the_latest_reads(mrz_sim):
    sim = mrz_sim()
    async with connected_reader(sim, queue_size=2) as reader:
        for specimen in (TD3, TD2, TD1, TD3):
            sim.send(specimen)
        await reader.wait_state(lambda s: s.documents_read == 4, 2)
        assert reader.state.events_dropped == 2
        assert [(await next_event(reader)).document.format for _ in range(2)] == ["TD1", "TD3"]


@pytest.mark.asyncio
async def test_a_noisy_chunked_slow_reader_still_delivers_every_document(mrz_sim):
    sim = mrz_sim(framing="lf", chunk=5, delay=0.0005, noise=0.2, seed=2)
    documents = list(itertools.islice(synthetic_documents(seed=3), 8))
    async with connected_reader(sim) as reader:
        for document in documents:
            await sim.send_async(document)
        events = [await next_event(reader) for _ in range(8)]
        assert all(event.ok for event in events)
        assert any(event.document.corrections or not event.document.valid for event in events)
        # Noise came between the documents, and none was lost.
        clean = sum(len(WIRES["lf"].encode(document)) for document in documents)
        assert reader.state.bytes_received > clean
        assert reader.state.documents_discarded == 0


# --- the virtual reader's command line ------------------------------------------------------


def run_cli(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, ["sim", "mrz-reader", *args], input=input)


def test_cli_help_shows_examples():
    result = run_cli("--help")
    assert result.exit_code == 0
    assert "borderlane-edge sim mrz-reader --framing stx-etx" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prefix", "zz"], "Invalid value for '--prefix': 'zz' is not hex (e.g. 1B4D)"),
        (["--framing", "xml"], "Invalid value for '--framing'"),
        (["--noise", "1.5"], "Invalid value for '--noise'"),
        (["--chunk", "0"], "Invalid value for '--chunk'"),
        (["/nonexistent/mrz.txt"], "Invalid value for '[MRZ-FILE|-]...'"),
    ],
)
def test_cli_bad_arguments_get_a_one_line_error(args, message):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert f"Error: {message}" in result.output
    assert "Traceback" not in result.output


def test_cli_refuses_input_without_an_mrz_and_a_link_over_a_file(tmp_path):
    result = run_cli("-", input="\n\n")
    assert (result.exit_code, result.output) == (1, "Error: no MRZ in the given files\n")
    (tmp_path / "taken").write_text("mine")
    result = run_cli("--link", str(tmp_path / "taken"), "--count", "1")
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot plug the reader in: ")
    assert result.output.count("\n") == 1
    assert (tmp_path / "taken").read_text() == "mine"


async def start_cli(*args: str, input: bytes = b"") -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from edge.cli import main; main()",
        "sim",
        "mrz-reader",
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(input)  # read whole before the device is announced
    process.stdin.close()
    first = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
    assert first.startswith("MRZ reader on "), first
    return process, first.removeprefix("MRZ reader on ").strip()


@pytest.mark.asyncio
async def test_cli_feeds_the_documents_it_is_given_to_the_driver(tmp_path):
    link = tmp_path / "by-id" / "usb-Acme_MRZ-if00"
    process, device = await start_cli(
        *("--link", str(link), "--framing", "cr", "--prefix", "1b4d", "--every", "0.05", "-"),
        input=f"{TD3}\n\n{TD1}\n".encode(),
    )
    assert device == str(link)
    try:
        config = fast_config(device, prefix=b"\x1bM")
        async with MrzReader(config) as reader:
            formats = [(await next_event(reader, 10)).document.format for _ in range(2)]
        assert formats == ["TD3", "TD1"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        output, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, errors
    assert output.decode().endswith("unplugged\n")
    assert not os.path.lexists(link)


@pytest.mark.asyncio
async def test_cli_generates_travellers_until_ctrl_c_then_unplugs(tmp_path):
    link = tmp_path / "usb-Acme_MRZ-if00"
    process, device = await start_cli("--link", str(link), "--every", "0.01", "--seed", "5")
    try:
        async with MrzReader(fast_config(device)) as reader:
            events = [await next_event(reader, 10) for _ in range(5)]
            assert [e.document.lines for e in events[:3]] == [lines(TD3), lines(TD2), lines(TD1)]
            assert all(e.document.valid for e in events)
            process.send_signal(signal.SIGINT)
            await reader.wait_state(disconnected, 10)
    finally:
        with contextlib.suppress(ProcessLookupError):  # again: a second Ctrl-C is harmless
            process.send_signal(signal.SIGINT)
        _, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, errors
    assert b"Traceback" not in errors
    assert not os.path.lexists(link)


def test_virtual_reader_refuses_bad_options_and_is_unplugged_once_closed(tmp_path):
    with pytest.raises(ValueError, match="framing 'xml'"):
        WireFormat("xml")
    with pytest.raises(ValueError, match="noise is a probability"):
        VirtualMrzReader(noise=2)
    with VirtualMrzReader(link=tmp_path / "a" / "usb-MRZ") as sim:
        assert Path(sim.device).resolve() == Path(sim.slave_path)
        assert not sim.is_open()
    assert not sim.plugged
    assert not os.path.lexists(tmp_path / "a" / "usb-MRZ")
    with pytest.raises(OSError, match="unplugged"):
        sim.write(b"x")

"""The card reader driver on the real PC/SC stack: pyscard -> pcscd -> vpcd -> our virtual cards.

Slot 0 holds one card for the whole module (:class:`QuirkCard`, which answers with 61XX, 6CXX,
takes extended APDUs or refuses them, and understands command chaining). Tests that insert and
pull cards use slot 1 and leave it empty. pcscd notices a vpcd card only on its ~0.4 s presence
poll, so insertions are few and shared where that stays readable.

A few tests are pure (ATR parsing, reader filter, the APDU layer against an in-memory card).
What the stack cannot do, and so is not tested here: a reader plugged or unplugged while pcscd
runs (vpcd readers are fixed; pcscd's reader.conf reload on SIGUSR1 is a no-op in Debian's
libudev build). The watcher's reader add/remove path is exercised by stopping and restarting a
private pcscd in a child process instead.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smartcard import scard

from edge.devices.apdu_transport import ExchangeStats, TransportOptions, exchange, split_command
from edge.devices.card_atr import capabilities_from_atr, compact_tlv, parse_atr
from edge.devices.card_config import CardReaderConfig, ReaderFilter
from edge.devices.card_errors import CardProtocolError
from edge.devices.card_reader import (
    CardEvent,
    CardInserted,
    CardReader,
    CardRemoved,
    CardRemovedError,
    CardSession,
    CardTimeout,
    ReaderAdded,
    ReaderBusy,
    ReaderUnavailable,
    SessionClosed,
    WatcherStatusChanged,
)
from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord, StatusWordError
from edge.sim.cards import IsoCard, build_atr, instruction
from edge.sim.pcscd import PcscStack
from edge.sim.vpcd import VpcdClient
from harness.pcsc import card_in_reader, wait_for_card

pytestmark = pytest.mark.timeout(60)

# Category 80, card capabilities 73: DF selection by full name (80), data coding (21), and the
# third table C0 = command chaining + extended Lc/Le. Then issuer data 55 "BLANE".
EXTENDED_ATR = build_atr(bytes.fromhex("80738021C0") + b"\x55BLANE")
# T=0 only: no interface bytes, three historical bytes, no TCK.
T0_ATR = bytes.fromhex("3B03803180")

INS_T0_READ = 0x10  # 61XX at once: every byte comes through GET RESPONSE
INS_EXACT_LE = 0x12  # 6CXX unless Le is exactly P2
INS_ECHO = 0x14  # echoes its (possibly chained) data; up to Ne now, the rest via 61XX
INS_HANG = 0x20


def pattern(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


def is_extended(apdu: bytes) -> bool:
    return len(apdu) > 5 and apdu[4] == 0


class QuirkCard(IsoCard):
    """A card with the habits the APDU layer must absorb."""

    ATR = EXTENDED_ATR
    SUPPORTED_CLASSES = frozenset({0x00, 0x10})  # 10: chaining

    def __init__(self) -> None:
        super().__init__()
        self.accept_extended = True
        self.wire: list[bytes] = []
        self._pending = b""
        self._chain = bytearray()

    def reset(self) -> None:
        super().reset()
        self._pending = b""
        self._chain.clear()

    def transmit(self, apdu: bytes) -> bytes:
        self.wire.append(apdu)
        if is_extended(apdu) and not self.accept_extended:
            return StatusWord.WRONG_LENGTH.to_bytes()
        return super().transmit(apdu)

    def _give(self, data: bytes, ne: int) -> ResponseApdu:
        now, self._pending = data[:ne], data[ne:]
        if self._pending:
            return ResponseApdu(now, StatusWord.bytes_remaining(min(len(self._pending), 256)))
        return ResponseApdu(now)

    @instruction(0xC0)
    def get_response(self, command: CommandApdu) -> ResponseApdu:
        if not self._pending or command.le is None:
            raise StatusWordError(StatusWord.CONDITIONS_NOT_SATISFIED)
        return self._give(self._pending, command.le)

    @instruction(INS_T0_READ)
    def t0_read(self, command: CommandApdu) -> ResponseApdu:
        self._pending = pattern(command.p1 << 8 | command.p2)
        return ResponseApdu(sw=StatusWord.bytes_remaining(min(len(self._pending), 256)))

    @instruction(INS_EXACT_LE)
    def exact_le(self, command: CommandApdu) -> ResponseApdu:
        if command.le != command.p2:
            raise StatusWordError(StatusWord.wrong_le(command.p2))
        return ResponseApdu(pattern(command.p2))

    @instruction(INS_ECHO)
    def echo(self, command: CommandApdu) -> ResponseApdu:
        self._chain += command.data
        if command.cla & 0x10:
            return ResponseApdu()
        data, self._chain = bytes(self._chain), bytearray()
        if command.le is None:
            return ResponseApdu()  # case 3: nothing asked for
        return self._give(data, command.le)


class HangingCard(IsoCard):
    """A T=0 card whose INS 20 does not answer until told to (a hung reader, as seen by us)."""

    ATR = T0_ATR

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    @instruction(INS_HANG)
    def hang(self, command: CommandApdu) -> ResponseApdu:
        self.entered.set()
        self.release.wait(10)
        return ResponseApdu(b"late")


def t0_read(length: int) -> CommandApdu:
    return CommandApdu(0x00, INS_T0_READ, length >> 8, length & 0xFF)


def echo(data: bytes, le: int | None) -> CommandApdu:
    return CommandApdu(0x00, INS_ECHO, 0, 0, data, le)


CHALLENGE = CommandApdu(0x00, 0x84, 0x00, 0x00, le=8)
HANG = CommandApdu(0x00, INS_HANG, 0, 0, le=4)


def config(**changes: object) -> CardReaderConfig:
    defaults: dict[str, object] = {"exchange_timeout": 3.0, "removal_confirm": 1.0}
    return CardReaderConfig(**{**defaults, **changes})  # type: ignore[arg-type]


# -- pure: ATR, reader filter, APDU layer --------------------------------------------------------


def test_extended_length_is_read_from_the_atr_card_capabilities() -> None:
    capabilities = capabilities_from_atr(EXTENDED_ATR)
    assert (capabilities.extended_length, capabilities.command_chaining) == (True, True)
    assert capabilities.source == "atr"
    assert parse_atr(EXTENDED_ATR).protocols == {1}
    # category 00: the last three historical bytes are a status indicator, not TLV
    status_indicator = build_atr(bytes.fromhex("00 73 00 00 40 00 90 00"))
    assert capabilities_from_atr(status_indicator).extended_length
    # no card capabilities object, a T=0 ATR, rubbish: nothing claimed
    for atr in (IsoCard.ATR, T0_ATR, b"\x3b", b"\x00\x01", EXTENDED_ATR[:-3]):
        assert capabilities_from_atr(atr).source == "default"
        assert not capabilities_from_atr(atr).extended_length
    assert parse_atr(T0_ATR).protocols == {0} and parse_atr(T0_ATR).historical == b"\x80\x31\x80"
    assert not parse_atr(EXTENDED_ATR[:-1]).well_formed  # TCK missing
    assert compact_tlv(bytes.fromhex("3180 70")) == {3: b"\x80", 7: b""}
    assert compact_tlv(bytes.fromhex("73 80")) is None  # length runs past the end


def test_reader_filter_patterns() -> None:
    omnikey = "HID Global OMNIKEY 5422 [OMNIKEY 5422 Smartcard Reader] 00 00"
    assert ReaderFilter()(omnikey)
    assert ReaderFilter(["omnikey"])(omnikey)  # part of the name, any case
    assert not ReaderFilter(["Virtual PCD"])(omnikey)
    assert ReaderFilter(["*5422*00 00"])(omnikey)  # glob over the whole name
    assert not ReaderFilter(["*5422*00 01"])(omnikey)
    assert ReaderFilter(["=Virtual PCD 00 01"])("Virtual PCD 00 01")
    assert not ReaderFilter(["=Virtual PCD 00 01"])("Virtual PCD 00 010")
    assert CardReaderConfig(readers="OMNIKEY").readers == ("OMNIKEY",)  # not O, M, N...
    with pytest.raises(ValueError, match="unknown card reader setting"):
        CardReaderConfig.from_mapping({"reader": ["x"]})
    with pytest.raises(ValueError, match="exchange_timeout"):
        CardReaderConfig(exchange_timeout=0)


def run_in_memory(
    card: QuirkCard, command: CommandApdu, extended: bool
) -> tuple[ResponseApdu, ExchangeStats]:
    """Drive the APDU layer straight against a card object: no PC/SC, same rules."""
    stats = ExchangeStats()
    steps = exchange(command, TransportOptions(extended_length=extended), stats)
    try:
        wire = next(steps)
        while True:
            wire = steps.send(card.transmit(wire))
    except StopIteration as done:
        return done.value, stats


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 1400),
    le=st.one_of(st.none(), st.integers(1, 1500)),
    extended=st.booleans(),
    accepts=st.booleans(),
)
def test_apdu_layer_returns_everything_whatever_the_form(
    size: int, le: int | None, extended: bool, accepts: bool
) -> None:
    card = QuirkCard()
    card.accept_extended = accepts
    data = pattern(size)
    response, stats = run_in_memory(card, echo(data, le), extended)
    assert response.sw == StatusWord.SUCCESS
    # the card gives back at least min(Ne, size) and, through 61XX, everything it has
    assert response.data == (data if le is not None else b"")
    short = size <= 255 and (le is None or le <= 256)
    if short or (extended and accepts):
        assert stats.chained_blocks == 0
    if not short and not (extended and accepts):
        # split: after at most one refused extended APDU, only short ones
        assert stats.extended_fallbacks == int(extended)
        assert not any(is_extended(apdu) for apdu in card.wire[stats.extended_fallbacks :])
        assert stats.chained_blocks == max(0, (size - 1) // 255)
    assert stats.apdus == len(card.wire)
    assert stats.bytes_sent == sum(map(len, card.wire))


def test_apdu_layer_split_and_get_response_class() -> None:
    blocks = split_command(CommandApdu(0x0C, 0xD6, 0, 0, pattern(600), le=1000))
    assert [(b.cla, b.nc, b.le) for b in blocks] == [
        (0x1C, 255, None),
        (0x1C, 255, None),
        (0x0C, 90, 256),
    ]
    card = QuirkCard()
    response, stats = run_in_memory(card, t0_read(300), extended=False)
    assert response.data == pattern(300) and stats.get_responses == 2
    assert [apdu[:2] for apdu in card.wire[1:]] == [b"\x00\xc0", b"\x00\xc0"]


def test_a_card_that_never_stops_saying_61xx_is_a_protocol_error() -> None:
    class Chatty(QuirkCard):
        @instruction(0xC0)
        def get_response(self, command: CommandApdu) -> ResponseApdu:
            return ResponseApdu(b"\x00", StatusWord.bytes_remaining(1))

    with pytest.raises(CardProtocolError, match="61XX"):
        run_in_memory(Chatty(), t0_read(1), extended=False)


# -- sessions on the module's card in slot 0 ---------------------------------------------------


@pytest.fixture(scope="module")
def quirk_card(pcsc_stack: PcscStack) -> Iterator[QuirkCard]:
    card = QuirkCard()
    with card_in_reader(pcsc_stack, card, slot=0):
        yield card


@pytest.fixture
def quirks(quirk_card: QuirkCard) -> QuirkCard:
    quirk_card.accept_extended = True
    quirk_card.wire.clear()
    return quirk_card


@pytest.fixture
def slot0(pcsc_stack: PcscStack, quirks: QuirkCard) -> str:
    return pcsc_stack.reader_names[0]


async def send_async(card: CardSession, command: CommandApdu) -> ResponseApdu:
    return await card.atransmit(command)


async def send_from_thread(card: CardSession, command: CommandApdu) -> ResponseApdu:
    # how the pure document readers run: a blocking transmit callable in a worker thread
    return await asyncio.to_thread(card.transmit, command)


both_paths = pytest.mark.parametrize(
    "send", [send_async, send_from_thread], ids=["async", "thread"]
)


@pytest.mark.asyncio
@both_paths
async def test_61xx_data_comes_through_get_response(slot0: str, quirks: QuirkCard, send) -> None:
    async with CardReader(config()).session(slot0) as card:
        assert card.atr == EXTENDED_ATR and card.protocol == "T1"
        response = await send(card, t0_read(600))
    assert response == ResponseApdu(pattern(600), StatusWord.SUCCESS)
    # 61 00 -> GET RESPONSE 256 -> 256 bytes + 61 00 -> 256 bytes + 61 58 -> 88 bytes + 9000
    assert card.stats.get_responses == 3 and card.stats.apdus == 4
    assert [apdu.hex().upper() for apdu in quirks.wire[1:]] == ["00C0000000"] * 2 + ["00C0000058"]
    assert card.stats.bytes_received == 600 + 4 * 2


@pytest.mark.asyncio
@both_paths
async def test_6cxx_is_resent_with_the_le_the_card_asked_for(
    slot0: str, quirks: QuirkCard, send
) -> None:
    async with CardReader(config()).session(slot0) as card:
        response = await send(card, CommandApdu(0x00, INS_EXACT_LE, 0, 0x21, le=256))
    assert response == ResponseApdu(pattern(0x21), StatusWord.SUCCESS)
    assert (card.stats.le_resends, card.stats.apdus) == (1, 2)
    assert quirks.wire[-1].hex().upper() == "0012002121"


@pytest.mark.asyncio
@both_paths
async def test_extended_length_learnt_from_the_atr_sends_one_apdu(
    slot0: str, quirks: QuirkCard, send
) -> None:
    async with CardReader(config()).session(slot0) as card:
        assert card.capabilities.extended_length and card.capabilities.source == "atr"
        response = await send(card, echo(pattern(600), le=600))
    assert response == ResponseApdu(pattern(600), StatusWord.SUCCESS)
    assert (card.stats.apdus, card.stats.extended_apdus, card.stats.chained_blocks) == (1, 1, 0)
    assert is_extended(quirks.wire[-1])


@pytest.mark.asyncio
@both_paths
async def test_without_extended_length_long_data_is_chained_and_read_in_short_pieces(
    slot0: str, quirks: QuirkCard, send
) -> None:
    async with CardReader(config(extended_length=False)).session(slot0) as card:
        assert not card.capabilities.extended_length and card.capabilities.source == "config"
        response = await send(card, echo(pattern(600), le=600))
    assert response == ResponseApdu(pattern(600), StatusWord.SUCCESS)
    # 255 + 255 chained (CLA 10), 90 last with Le 00; then 256 + 61 00, 256 + 61 58, 88 + 9000
    assert [apdu[0] for apdu in quirks.wire[:3]] == [0x10, 0x10, 0x00]
    assert not any(is_extended(apdu) for apdu in quirks.wire)
    stats = card.stats
    assert (stats.apdus, stats.chained_blocks, stats.get_responses, stats.extended_apdus) == (
        5,
        2,
        2,
        0,
    )
    assert stats.bytes_sent == sum(map(len, quirks.wire))
    assert (
        stats.bytes_received == 600 + 3 * 2 + 2 * 2
    )  # data, the 3 answers to the chain, 2 GET RESPONSE


@pytest.mark.asyncio
async def test_a_card_refusing_extended_length_gets_short_apdus_from_then_on(
    slot0: str, quirks: QuirkCard
) -> None:
    quirks.accept_extended = False
    async with CardReader(config(extended_length=True)).session(slot0) as card:
        first = await card.atransmit(echo(pattern(300), le=300))
        assert first == ResponseApdu(pattern(300), StatusWord.SUCCESS)
        assert card.stats.extended_fallbacks == 1 and not card.capabilities.extended_length
        refused = len(quirks.wire)
        second = await card.atransmit(echo(pattern(300), le=300))
    assert second == ResponseApdu(pattern(300), StatusWord.SUCCESS)
    assert card.stats.extended_fallbacks == 1
    assert not any(is_extended(apdu) for apdu in quirks.wire[refused:])


def exclusive_connect_works(reader: str) -> bool:
    """Can another PC/SC client take the card exclusively right now? (No waiting.)"""
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        hresult, handle, _ = scard.SCardConnect(
            context,
            reader,
            scard.SCARD_SHARE_EXCLUSIVE,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if hresult == scard.SCARD_S_SUCCESS:
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        return hresult == scard.SCARD_S_SUCCESS
    finally:
        scard.SCardReleaseContext(context)


@pytest.mark.asyncio
async def test_the_session_is_exclusive_and_released_after_an_exception(slot0: str) -> None:
    reader = CardReader(config())
    with pytest.raises(ZeroDivisionError):
        async with reader.session(slot0) as card:
            assert (await card.atransmit(CHALLENGE)).sw == StatusWord.SUCCESS
            assert not exclusive_connect_works(slot0)  # nobody else while we read
            with pytest.raises(ReaderBusy):  # nor a second session of ours
                await reader.session(slot0).aopen()
            1 / 0  # noqa: B018
    assert exclusive_connect_works(slot0)  # released at once: no waiting, no retry
    async with reader.session(slot0) as card:
        assert (await card.atransmit(CHALLENGE)).sw == StatusWord.SUCCESS
    status = reader.reader_state().readers[slot0]
    assert not status.in_session and status.apdus == 2


@pytest.mark.asyncio
async def test_the_session_is_released_when_its_task_is_cancelled(slot0: str) -> None:
    reader = CardReader(config())
    inside = asyncio.Event()

    async def read_forever() -> None:
        async with reader.session(slot0) as card:
            await card.atransmit(CHALLENGE)
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(read_forever())
    await asyncio.wait_for(inside.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert exclusive_connect_works(slot0)


@pytest.mark.asyncio
async def test_a_session_dropped_without_closing_gives_the_reader_back(slot0: str) -> None:
    reader = CardReader(config())
    session = await reader.session(slot0).aopen()
    assert not exclusive_connect_works(slot0)
    del session
    gc.collect()
    for _ in range(100):
        if not reader.reader_state().readers[slot0].in_session:
            break
        await asyncio.sleep(0.01)
    assert exclusive_connect_works(slot0)


@pytest.mark.asyncio
async def test_another_application_holding_the_card_makes_the_reader_busy(slot0: str) -> None:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    hresult, handle, _ = scard.SCardConnect(
        context, slot0, scard.SCARD_SHARE_EXCLUSIVE, scard.SCARD_PROTOCOL_T1
    )
    assert hresult == scard.SCARD_S_SUCCESS
    try:
        reader = CardReader(config())
        with pytest.raises(ReaderBusy, match=r"(?i)sharing violation"):
            async with reader.session(slot0):
                pass
        assert "haring violation" in (reader.reader_state().readers[slot0].last_error or "")
    finally:
        scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)
    assert exclusive_connect_works(slot0)


def test_sync_session_for_threads_and_guard_on_the_event_loop(slot0: str) -> None:
    with CardReader(config()).session(slot0) as card:
        assert card.transmit(CHALLENGE).sw == StatusWord.SUCCESS
        with pytest.raises(TypeError, match="CommandApdu"):
            card.transmit(CHALLENGE.to_bytes())  # type: ignore[arg-type]
        assert card.transmit(CHALLENGE).sw == StatusWord.SUCCESS  # a caller bug kills nothing

    async def misuse() -> None:
        async with CardReader(config()).session(slot0) as card:
            with pytest.raises(RuntimeError, match="async form"):
                card.transmit(CHALLENGE)  # would freeze the lane
            assert card.is_open  # refused before anything was sent
        with pytest.raises(SessionClosed, match="not open"):
            await card.atransmit(CHALLENGE)

    asyncio.run(misuse())


@pytest.mark.asyncio
async def test_readers_outside_the_configuration_and_empty_readers(
    pcsc_stack: PcscStack, quirks: QuirkCard
) -> None:
    only_slot0 = CardReader(config(readers=[f"={pcsc_stack.reader_names[0]}"]))
    with pytest.raises(ReaderUnavailable, match="not a configured"):
        only_slot0.session(pcsc_stack.reader_names[1])
    with pytest.raises(CardRemovedError, match="No smart card inserted"):
        async with CardReader(config()).session(pcsc_stack.reader_names[1]):
            pass
    with pytest.raises(ReaderUnavailable, match="Unknown reader"):
        async with CardReader(config()).session("No Such Reader 00 00"):
            pass


# -- the watcher ---------------------------------------------------------------------------------


async def card_events(reader: CardReader) -> AsyncIterator[CardEvent]:
    async for event in reader.events():
        if not isinstance(event, WatcherStatusChanged):
            yield event


async def take(
    events: AsyncIterator[CardEvent], count: int, timeout: float = 3.0
) -> list[CardEvent]:
    return [await asyncio.wait_for(anext(events), timeout) for _ in range(count)]


@pytest.mark.asyncio
async def test_watcher_reports_inserts_and_removals_without_polling(
    pcsc_stack: PcscStack, quirks: QuirkCard
) -> None:
    slot0, slot1 = pcsc_stack.reader_names
    async with CardReader(config()) as reader:
        events = card_events(reader)
        # the picture at start: both readers, the card already in slot 0
        assert await take(events, 3) == [
            ReaderAdded(slot0),
            ReaderAdded(slot1),
            CardInserted(slot0, EXTENDED_ATR),
        ]
        # a session on slot 0 (connect, exchange, reset on release) is no card event
        async with reader.session(slot0) as card:
            await card.atransmit(CHALLENGE)
        await asyncio.sleep(0.1)
        idle = reader.reader_state().watcher.wakeups
        await asyncio.sleep(0.6)  # longer than pcscd's presence poll
        assert reader.reader_state().watcher.wakeups == idle  # asleep in SCardGetStatusChange

        card = IsoCard()
        client = VpcdClient(card, port=pcsc_stack.vpcd_port + 1).insert()
        try:
            assert await take(events, 1) == [CardInserted(slot1, card.atr)]
        finally:
            client.remove()
        assert await take(events, 1) == [CardRemoved(slot1)]
        state = reader.reader_state()
        assert state.watcher.state == "running"
        assert state.readers[slot0].card_present and state.readers[slot0].atr == EXTENDED_ATR
        assert state.readers[slot1].present and not state.readers[slot1].card_present
        assert state.readers[slot1].atr is None
        assert state.watcher.wakeups <= idle + 3  # one per real change (+1 the pcscd state flip)
        as_dict = state.as_dict()
        assert as_dict["readers"][slot0]["atr"] == EXTENDED_ATR.hex().upper()
        json.dumps(as_dict)
    assert reader.reader_state().watcher.state == "stopped"


@pytest.mark.asyncio
async def test_watcher_only_reports_configured_readers(
    pcsc_stack: PcscStack, quirks: QuirkCard
) -> None:
    slot1 = pcsc_stack.reader_names[1]
    async with CardReader(config(readers=["*00 01"])) as reader:
        events = card_events(reader)
        assert await take(events, 1) == [ReaderAdded(slot1)]
        with pytest.raises(TimeoutError):  # nothing about slot 0 and its card
            await take(events, 1, timeout=0.3)
        assert set(reader.reader_state().readers) == {slot1}


@pytest.mark.asyncio
async def test_with_no_matching_reader_the_watcher_sleeps_on_pnp_alone(quirks: QuirkCard) -> None:
    # a kiosk booted before its reader is plugged in: only the PnP pseudo-reader is watched
    async with CardReader(config(readers=["=Reader Not Plugged Yet"])) as reader:
        events = reader.events()
        assert await take(events, 2) == [
            WatcherStatusChanged("starting"),
            WatcherStatusChanged("running"),
        ]
        woken = reader.reader_state().watcher.wakeups
        await asyncio.sleep(0.5)
        state = reader.reader_state()
        assert state.watcher.wakeups == woken <= 1 and state.readers == {}


@pytest.mark.asyncio
async def test_the_watcher_stops_promptly_when_its_task_is_cancelled(quirks: QuirkCard) -> None:
    started = asyncio.Event()
    reader = CardReader(config())

    async def consume() -> None:
        async with reader:
            async for event in reader.events():
                if isinstance(event, WatcherStatusChanged) and event.state == "running":
                    started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 3)
    assert reader.watcher.running
    begin = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - begin < 0.5
    assert not reader.watcher.running  # the thread has ended
    assert reader.reader_state().watcher.state == "stopped"


# -- slot 1: cards that hang, cards that are pulled ---------------------------------------------


@contextmanager
def inserted(stack: PcscStack, card: IsoCard, slot: int = 1) -> Iterator[VpcdClient]:
    """Insert ``card``; the test may pull it (client.remove()); on exit the slot is empty."""
    reader = stack.reader_names[slot]
    client = VpcdClient(card, port=stack.vpcd_port + slot).insert()
    try:
        wait_for_card(reader, present=True)
        yield client
    finally:
        if isinstance(card, HangingCard):
            card.release.set()
        client.remove()
        wait_for_card(reader, present=False)


@pytest.mark.asyncio
async def test_a_hung_exchange_times_out_and_the_reader_recovers(pcsc_stack: PcscStack) -> None:
    slot1 = pcsc_stack.reader_names[1]
    card = HangingCard()
    reader = CardReader(config(exchange_timeout=0.3))
    with inserted(pcsc_stack, card):
        session = reader.session(slot1)
        async with session:
            assert session.protocol == "T0" and session.atr == T0_ATR
            begin = time.monotonic()
            hung = asyncio.create_task(session.atransmit(HANG))
            assert await asyncio.to_thread(card.entered.wait, 3)
            with pytest.raises(RuntimeError, match="one exchange at a time"):
                await session.atransmit(CHALLENGE)
            with pytest.raises(CardTimeout, match=r"did not answer within 0\.3s"):
                await hung
            assert 0.3 <= time.monotonic() - begin < 0.8
            with pytest.raises(SessionClosed, match="unusable"):  # dead, and says why
                await session.atransmit(CHALLENGE)
            assert reader.reader_state().readers[slot1].stuck
            with pytest.raises(ReaderBusy, match="stuck"):  # fails fast, no queueing
                await reader.session(slot1).aopen()
            begin = time.monotonic()
        assert time.monotonic() - begin < 0.2  # leaving the block does not wait for the reader

        card.release.set()  # the reader finally answers: the worker disconnects and releases
        for _ in range(100):
            if not reader.reader_state().readers[slot1].stuck:
                break
            await asyncio.sleep(0.02)
        assert not reader.reader_state().readers[slot1].stuck
        assert "did not answer" in (reader.reader_state().readers[slot1].last_error or "")

        # the same from a worker thread, with the blocking transmit
        card.release.clear()
        async with reader.session(slot1) as session:
            with pytest.raises(CardTimeout):
                await asyncio.to_thread(session.transmit, HANG)
        card.release.set()


@pytest.mark.asyncio
async def test_a_card_pulled_mid_exchange_raises_card_removed_promptly(
    pcsc_stack: PcscStack,
) -> None:
    slot1 = pcsc_stack.reader_names[1]
    card = HangingCard()
    reader = CardReader(config())
    with inserted(pcsc_stack, card) as client:
        async with reader.session(slot1) as session:
            exchange_task = asyncio.create_task(session.atransmit(HANG))
            assert await asyncio.to_thread(card.entered.wait, 3)
            begin = time.monotonic()
            puller = threading.Thread(target=client.remove)  # returns when the card is freed
            puller.start()
            with pytest.raises(CardRemovedError, match="removed"):
                await exchange_task
            assert time.monotonic() - begin < 1.5  # pcscd's presence poll, not a timeout
            card.release.set()
            puller.join(3)
            with pytest.raises(SessionClosed):
                await session.atransmit(CHALLENGE)
    assert "removed" in (reader.reader_state().readers[slot1].last_error or "")


@pytest.mark.asyncio
@pytest.mark.parametrize("noticed", [False, True], ids=["before-pcscd-noticed", "after"])
async def test_a_card_pulled_between_exchanges_raises_card_removed(
    pcsc_stack: PcscStack, noticed: bool
) -> None:
    # before pcscd's presence poll the reader says SCARD_E_NOT_TRANSACTED (we then watch the
    # reader); after it, SCARD_W_REMOVED_CARD
    slot1 = pcsc_stack.reader_names[1]
    with inserted(pcsc_stack, IsoCard()) as client:
        async with CardReader(config()).session(slot1) as session:
            assert (await session.atransmit(CHALLENGE)).sw == StatusWord.SUCCESS
            client.remove()
            if noticed:
                await asyncio.to_thread(wait_for_card, slot1, present=False)
            begin = time.monotonic()
            with pytest.raises(CardRemovedError, match=r"(?i)removed"):
                await asyncio.to_thread(session.transmit, CHALLENGE)
            assert time.monotonic() - begin < (0.2 if noticed else 1.5)


# -- pcscd going away and coming back (a private pcscd, in a child process) ----------------------

CHILD = r"""
import asyncio, json, os, sys, time
from edge.sim.pcscd import PcscStack

workdir = sys.argv[1]
first = PcscStack(workdir)
os.environ["PCSCLITE_CSOCK_NAME"] = str(first.socket_path)  # before the first PC/SC call

from edge.devices.card_reader import (
    CardReader, CardReaderConfig, ReaderAdded, ReaderRemoved, WatcherStatusChanged,
)

def say(*items):
    print(json.dumps(items), flush=True)

async def until(events, done, timeout=5.0):
    seen = []
    while not done(seen):
        event = await asyncio.wait_for(anext(events), timeout)
        seen.append(event)
    return seen

def names(seen, kind):
    return sorted(e.reader for e in seen if isinstance(e, kind))

def status(seen, state):
    return any(isinstance(e, WatcherStatusChanged) and e.state == state for e in seen)

async def main():
    reader = CardReader(CardReaderConfig(readers=["PCD"], backoff_initial=0.05, backoff_max=0.2))
    async with reader:
        events = reader.events()
        await until(events, lambda seen: status(seen, "pcscd_unavailable"))
        say("down", reader.reader_state().watcher.state, reader.reader_state().watcher.detail)
        first.start()
        seen = await until(events, lambda seen: len(names(seen, ReaderAdded)) == 2)
        say("up", names(seen, ReaderAdded))
        first.stop()
        seen = await until(events, lambda seen: len(names(seen, ReaderRemoved)) == 2
                            and status(seen, "pcscd_unavailable"))
        state = reader.reader_state()
        say("gone", names(seen, ReaderRemoved), state.watcher.state,
            sorted(n for n, r in state.readers.items() if r.present))
        second = PcscStack(workdir, friendly_name="Other PCD").start()
        seen = await until(events, lambda seen: len(names(seen, ReaderAdded)) == 2)
        say("back", names(seen, ReaderAdded), reader.reader_state().watcher.reconnects)
        begin = time.monotonic()
    say("stopped", reader.reader_state().watcher.state, time.monotonic() - begin)
    second.stop()

asyncio.run(main())
"""


def test_pcscd_going_away_and_coming_back(pcsc_stack: PcscStack, tmp_path: Path) -> None:
    if not pcsc_stack.isolated:
        pytest.fail(
            "needs a private pcscd (root and unshare); the system's is not ours to stop",
            pytrace=False,
        )
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {items[0]: items[1:] for items in map(json.loads, result.stdout.splitlines())}
    state, detail = lines["down"]
    assert state == "pcscd_unavailable" and "0x8010001D" in detail  # SCARD_E_NO_SERVICE
    assert lines["up"] == [["Virtual PCD 00 00", "Virtual PCD 00 01"]]
    assert lines["gone"] == [["Virtual PCD 00 00", "Virtual PCD 00 01"], "pcscd_unavailable", []]
    assert lines["back"] == [["Other PCD 00 00", "Other PCD 00 01"], 1]
    state, took = lines["stopped"]
    assert state == "stopped" and took < 0.5

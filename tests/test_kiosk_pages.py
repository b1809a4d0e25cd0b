"""The kiosk pages (edge/ui) in a real headless Chromium, on a real lane.

The lane is the real one: a real outbox file, the real watchlist store behind the screening
adapter, and virtual CBICs read through pcscd + vpcd by the real card reader driver. The lane and
its pages run in their own thread's event loop, as in the agent; the test drives the browser.
No broker anywhere: the officer screen must work with no network.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from test_lane import ISSUER, JP2_FACE, PKI, TODAY, TRUST, WORKER, sample, td3

from edge.devices.card_reader import CardReader, CardReaderConfig
from edge.documents.mrz import parse as parse_mrz
from edge.lane import (
    CardPresented,
    Lane,
    LaneConfig,
    MrzScanned,
    ReviewItem,
    ReviewQueue,
    StoreScreener,
)
from edge.screening.store import WatchlistStore
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import SAMPLES_DIR, issue_card
from edge.sim.emrtd_chip import passport_chip
from edge.ui import KioskPages, KioskPagesError, OfficerDirectory, add_officer
from edge.uplink.outbox import Outbox
from harness.browser import event_stream_messages, wait_until
from mqtt_schemas import validate
from mqtt_schemas.envelope import StaticClock
from mqtt_schemas.watchlist import entry_from_record

OFFICER, PIN = "BDF-2231", "482916"
#: Marisol Andrea Castillo (the resident-worker CBIC) is on a list whose action is "refer".
LISTED = {
    "id": "nw-castillo",
    "kind": "person",
    "names": ["CASTILLO, MARISOL ANDREA"],
    "birth_date": "1988-03-14",
    "nationality": ["BLZ"],
    "sex": "F",
    "list": "national-wanted",
    "action": "refer",
}
#: José Ángel Chub Xol, a student whose card is valid here, is on no list: he passes.
STUDENT = issue_card(sample("student") | {"valid_at": ["bz-santa-elena"]}, ISSUER)
OTHER = {"id": "nw-other", "kind": "person", "names": ["HABBASH, GEORGE"], "list": "interpol"}
#: What must never reach the traveller's screen about this traveller and their hit.
SECRETS = (
    "nw-castillo",
    "national-wanted",
    "CASTILLO",
    "Castillo",
    "CB4410275",
    "1988-03-14",
    "score",
)


@pytest.fixture(scope="module")
def officers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("officers") / "officers.json"
    add_officer(path, OFFICER, PIN)
    return path


class Kiosk:
    """A lane and its pages in a thread of their own (the agent's event loop)."""

    def __init__(self, tmp_path: Path, officers: OfficerDirectory, **pages: Any) -> None:
        self.db = tmp_path / "kiosk.db"
        self.watchlist = tmp_path / "watchlist.db"
        with WatchlistStore(self.watchlist) as writer, writer.transaction():
            for record in (LISTED, OTHER):
                writer.add(*entry_from_record(record))
            writer.set_version(7, source="test")
        self.officers = officers
        self.options = {"port": 0, "keepalive_s": 1.0, "queue_refresh_s": 1.0} | pages
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._start)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` (sync or async) in the kiosk's loop; return its result."""

        async def run() -> Any:
            result = function()
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    async def _start(self) -> None:
        self.outbox = Outbox(self.db, "kiosk-bz-se-01", StaticClock())
        self.store = WatchlistStore(self.watchlist, readonly=True)
        config = LaneConfig.from_dict(
            {
                "site": "bz-santa-elena",
                "lane": "lane-1",
                "direction": "entry",
                "policy": {"show_s": 1.5, "chip_wait_s": 0.8, "no_chip": "restart"},
            }
        )
        self.lane = Lane(
            config,
            outbox=self.outbox,
            screener=StoreScreener(self.store),
            issuers=TRUST,
            cscas=PKI.trust_store(),
            today=lambda: TODAY,
        )
        self.reader = CardReader(CardReaderConfig())
        self.lane_task = asyncio.create_task(self.lane.run())
        await self.start_pages()

    async def start_pages(self, port: int | None = None) -> None:
        options = self.options | ({"port": port} if port is not None else {})
        self.pages = KioskPages(self.lane, officers=self.officers, **options)
        await self.pages.__aenter__()
        self.url = self.pages.url

    def restart_pages(self) -> None:
        """Stop the pages and serve them again on the same port (the agent restarting them)."""
        port = int(self.url.rsplit(":", 1)[1])
        self.call(lambda: self.pages.__aexit__(None, None, None))
        self.call(lambda: self.start_pages(port))

    def tap(self, card_slot: Any, card: CbicCard) -> None:
        card_slot.put(card)
        presented = CardPresented(lambda: self.reader.session(card_slot.reader), card_slot.reader)
        self.loop.call_soon_threadsafe(self.lane.submit, presented)

    def submit(self, event: Any) -> None:
        self.loop.call_soon_threadsafe(self.lane.submit, event)

    def close(self) -> None:
        async def stop() -> None:
            self.lane_task.cancel()
            await asyncio.gather(self.lane_task, return_exceptions=True)
            await self.pages.__aexit__(None, None, None)
            self.outbox.close()
            self.store.close()

        self.call(stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    def records(self, channel: str) -> list[dict[str, Any]]:
        """The outbox's records on ``channel``, read from its file as the uplink would."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute(
                "SELECT payload FROM uplink_outbox WHERE channel = ? ORDER BY seq", (channel,)
            ).fetchall()
        return [json.loads(payload) for (payload,) in rows]


@pytest.fixture
def kiosk(tmp_path: Path, officers_file: Path) -> Iterator[Kiosk]:
    kiosk = Kiosk(tmp_path, OfficerDirectory.load(officers_file), login_attempts=3)
    try:
        yield kiosk
    finally:
        kiosk.close()


def screen_text(page: Any) -> str:
    return page.find_element(By.ID, "message").text


def connected(page: Any) -> bool:
    """The traveller screen has its live feed."""
    return page.find_element(By.ID, "screen").get_attribute("data-connected") == "true"


def shows(text: str) -> Callable[[Any], bool]:
    return lambda page: screen_text(page) == text


def replaced(element: Any) -> Callable[[Any], bool]:
    """The page holding ``element`` gave way to the next one (a form's answer has loaded).

    Selenium's ``staleness_of``, except that a question asked while Chromium swaps the two
    documents may fail with an "unhandled inspector error": that means "not yet", not a failure.
    """

    def gone(_page: Any) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException:  # mid-navigation: ask again
            return False
        return False

    return gone


def log_in(page: Any, kiosk: Kiosk, officer_id: str = OFFICER, pin: str = PIN) -> None:
    page.get(kiosk.url + "/officer/login")
    page.find_element(By.ID, "officer_id").send_keys(officer_id)
    page.find_element(By.ID, "pin").send_keys(pin)
    form = page.find_element(By.ID, "login")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(page, replaced(form))  # the answer page has loaded


def decide(page: Any, decision: str, reason: str) -> None:
    """Fill in the review page's decision form and send it; return once the answer is shown."""
    form = page.find_element(By.ID, "decide")
    page.find_element(By.ID, f"decision-{decision}").click()
    page.find_element(By.ID, "reason").send_keys(reason)
    page.find_element(By.ID, "submit-decision").click()
    wait_until(page, replaced(form))


def queue_ids(page: Any) -> list[str]:
    """The crossing ids in the officer's queue, read in one script: the queue refreshes itself,
    and elements found before a refresh go stale between a find and a read."""
    return page.execute_script(
        "return Array.from(document.querySelectorAll('#queue li'))"
        ".map(item => item.getAttribute('data-crossing-id'))"
    )


# -- the traveller's screen ------------------------------------------------------------------


def test_the_traveller_screen_follows_the_lane_in_english_or_spanish(
    page, kiosk, card_slot
) -> None:
    page.get(kiosk.url + "/")
    wait_until(page, shows("Tap your card or scan your passport's photo page"))
    wait_until(page, connected)

    kiosk.tap(card_slot, CbicCard.from_image(STUDENT))  # on no watchlist: passes
    wait_until(page, shows("Thank you, please proceed"))
    assert page.find_element(By.ID, "screen").get_attribute("data-outcome") == "pass"
    phases = [m["phase"] for m in event_stream_messages(page, "/traveller/events")]
    assert phases == ["idle", "reading", "checking", "result"]

    button = page.find_element(By.ID, "language")
    assert button.text == "Español"
    button.click()
    assert screen_text(page) == "Gracias, puede continuar"
    assert page.find_element(By.ID, "language").text == "English"

    page.refresh()  # the choice is remembered
    wait_until(page, shows("Gracias, puede continuar"))
    # after show_s the lane is idle again, and the screen says so in Spanish
    wait_until(page, shows("Acerque su tarjeta o escanee la página de datos de su pasaporte"))
    assert page.find_element(By.ID, "screen").get_attribute("data-phase") == "idle"


def test_a_passport_mrz_asks_for_the_chip_then_times_out(page, kiosk) -> None:
    page.get(kiosk.url + "/")
    wait_until(page, shows("Tap your card or scan your passport's photo page"))
    kiosk.submit(MrzScanned(parse_mrz(td3())))
    wait_until(page, shows("Now place your passport on the card reader"))
    assert page.find_element(By.ID, "screen").get_attribute("data-phase") == "reading"
    wait_until(page, shows("Time is up, please start again"))  # chip_wait_s, no chip came


def test_the_traveller_screen_reconnects_when_the_pages_restart(page, kiosk, card_slot) -> None:
    page.get(kiosk.url + "/")
    wait_until(page, connected)
    kiosk.restart_pages()
    kiosk.tap(card_slot, CbicCard.from_image(STUDENT))
    wait_until(page, shows("Thank you, please proceed"), timeout=8)


# -- a watchlisted traveller, from the lane to the officer's decision ------------------------


def test_a_watchlisted_traveller_is_referred_and_an_officer_denies_with_no_network(
    page, kiosk, card_slot, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="edge.ui")
    # The officer is logged in, the queue is empty.
    log_in(page, kiosk)
    wait_until(page, lambda p: p.current_url == kiosk.url + "/officer")
    assert queue_ids(page) == [] and page.find_element(By.ID, "empty").is_displayed()
    officer_tab = page.current_window_handle

    # The lane's display, in another tab.
    page.switch_to.new_window("tab")
    page.get(kiosk.url + "/")
    wait_until(page, shows("Tap your card or scan your passport's photo page"))
    event_stream_messages(page)  # forget the officer page's stream so far

    kiosk.tap(card_slot, CbicCard.from_image(WORKER))
    wait_until(page, shows("Please see an officer"))

    # The traveller's page received the message and a neutral outcome, nothing else.
    received = event_stream_messages(page, "/traveller/events")
    assert received[-1] == {
        "phase": "result",
        "outcome": "officer",
        "message": {
            "key": "lane.see_officer",
            "texts": {"en": "Please see an officer", "es": "Por favor, diríjase a un oficial"},
        },
    }
    assert all(set(m) == {"phase", "outcome", "message"} for m in received)
    assert all(set(m["message"]) == {"key", "texts"} for m in received)
    for secret in SECRETS:
        assert secret not in json.dumps(received) and secret not in page.page_source, secret

    # The officer's queue got the referral by itself.
    page.switch_to.window(officer_tab)
    wait_until(page, lambda p: len(queue_ids(p)) == 1, message="the referral never arrived")
    (crossing_id,) = queue_ids(page)
    # Read and followed in scripts: the queue refreshes itself, so an element found first can
    # be replaced before it is read (a stale element).
    row = page.execute_script("return document.querySelector('#queue li').innerText")
    assert "CASTILLO, Marisol Andrea" in row and "CB4410275" in row
    assert "Watchlist hit (refer)" in row

    # The detail: document, the matched entry, and why it matched.
    page.execute_script("document.querySelector('#queue li a').click()")
    wait_until(page, lambda p: "/officer/review/" in p.current_url)
    hit = page.find_element(By.CSS_SELECTOR, "#hits .hit")
    assert hit.get_attribute("data-entry-id") == "nw-castillo"
    assert "national-wanted" in hit.text and "CASTILLO, MARISOL ANDREA" in hit.text
    why = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in hit.find_elements(By.CSS_SELECTOR, "table.why tbody tr")
    ]
    parts = {part for part, _how, _detail in why}
    assert {"surname", "birth-date"} <= parts, why
    assert all(how and detail for _part, how, detail in why)
    document = page.find_element(By.ID, "document").text
    assert "CB4410275" in document and "1988-03-14" in document

    # Deny, with a reason: the item leaves the queue, the decision is in the outbox.
    decide(page, "deny", "Identity confirmed against the entry.")
    assert page.current_url == kiosk.url + "/officer"
    assert "Denied" in page.find_element(By.ID, "notice").text
    assert queue_ids(page) == []

    (decision,) = kiosk.records("decisions")
    validate("officer-decision", decision)
    (crossing,) = kiosk.records("crossings")
    assert decision["crossing_id"] == crossing_id == crossing["id"]
    assert decision["officer_id"] == OFFICER and decision["decision"] == "deny"
    assert decision["reason"] == "Identity confirmed against the entry."
    assert decision["hit_id"] == crossing["screening"]["hits"][0]["hit_id"]
    item = kiosk.call(lambda: kiosk.lane.reviews.get(crossing_id))
    assert item.status == "denied" and item.personal is None

    # The officer's actions are logged, without the traveller or the officer's free text.
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("edge.ui")]
    assert f"officer {OFFICER}: deny on crossing {crossing_id}" in "\n".join(logged)
    for secret in (*SECRETS, "Identity confirmed", PIN):
        assert secret not in "\n".join(logged), secret


def test_a_decision_on_a_traveller_already_decided_is_refused_on_the_page(
    page, kiosk, card_slot
) -> None:
    kiosk.tap(card_slot, CbicCard.from_image(WORKER))
    log_in(page, kiosk)
    wait_until(page, lambda p: len(queue_ids(p)) == 1)
    (crossing_id,) = queue_ids(page)
    page.get(f"{kiosk.url}/officer/review/{crossing_id}")

    # A reason is required, by the server too (the browser's own check removed).
    page.execute_script("document.getElementById('reason').removeAttribute('required')")
    decide(page, "accept", "   ")
    assert "A reason is required" in page.find_element(By.ID, "error").text

    # Meanwhile another officer accepts; this officer's deny is refused, clearly.
    kiosk.call(
        lambda: kiosk.lane.officer_decide(
            crossing_id, officer_id="BDF-0001", decision="accept", reason="Namesake."
        )
    )
    page.find_element(By.ID, "reason").clear()
    decide(page, "deny", "Too late.")
    assert "already decided (accepted)" in page.find_element(By.ID, "error").text
    assert [d["decision"] for d in kiosk.records("decisions")] == ["accept"]

    page.get(f"{kiosk.url}/officer/review/018f0000-0000-7000-8000-000000000000")
    assert "No referred traveller" in page.find_element(By.ID, "error").text


def test_the_review_shows_the_document_photo_when_there_is_one(page, kiosk) -> None:
    # A referral whose document carried a portrait (the lane puts it in the review item's
    # personal data, cleared with the rest on a final decision).
    face = (SAMPLES_DIR / "specimen-face.jpg").read_bytes()
    item = ReviewItem(
        crossing_id="018f0000-0000-7000-8000-00000000f00d",
        created_ms=1_795_000_000_000,
        lane="lane-1",
        priority="normal",
        reasons=("document-expired",),
        document={"kind": "passport", "number": "L898902C3", "issuing_state": "UTO"},
        personal={
            "traveller": {"surname": "ERIKSSON", "given_names": "ANNA MARIA"},
            "hits": [],
            "photo": {"media_type": "image/jpeg", "data": base64.b64encode(face).decode()},
        },
        status="open",
    )

    def insert() -> None:
        with kiosk.outbox.transaction() as tx:
            ReviewQueue.insert(tx, item)

    kiosk.call(insert)
    log_in(page, kiosk)
    page.get(f"{kiosk.url}/officer/review/{item.crossing_id}")
    assert page.find_element(By.TAG_NAME, "h1").text == "ERIKSSON, ANNA MARIA"
    photo = page.find_element(By.ID, "photo")
    wait_until(page, lambda p: p.execute_script("return arguments[0].naturalWidth", photo) > 0)
    assert "No watchlist hit" in page.find_element(By.ID, "hits").text
    assert "Document expired" in page.find_element(By.ID, "reasons").text


def test_the_chip_s_face_is_on_the_review_until_the_decision_or_says_why_not(
    page, kiosk, card_slot
) -> None:
    """From the lane, through pcscd: an expired passport is referred, and its DG2 face (the
    specimen JPEG) is what the officer sees; a JPEG 2000 face is named, not shown broken."""
    expired = td3(expiry="250101")
    kiosk.submit(MrzScanned(parse_mrz(expired)))
    kiosk.tap(card_slot, passport_chip(expired, pki=PKI))
    log_in(page, kiosk)
    wait_until(page, lambda p: len(queue_ids(p)) == 1)
    (crossing_id,) = queue_ids(page)
    page.get(f"{kiosk.url}/officer/review/{crossing_id}")
    photo = page.find_element(By.ID, "photo")
    wait_until(page, lambda p: p.execute_script("return arguments[0].naturalWidth", photo) > 0)
    assert page.execute_script("return arguments[0].naturalHeight", photo) > 0

    decide(page, "accept", "Renewal under way; identity confirmed.")
    photo_url = f"{kiosk.url}/officer/review/{crossing_id}/photo"
    page.get(photo_url)  # cleared with the rest of the personal data
    assert "no photo for this traveller" in page.find_element(By.TAG_NAME, "body").text

    other = td3(number="X4471025", expiry="250101")
    kiosk.submit(MrzScanned(parse_mrz(other)))
    kiosk.tap(card_slot, passport_chip(other, pki=PKI, face=JP2_FACE))
    page.get(f"{kiosk.url}/officer")
    wait_until(page, lambda p: len(queue_ids(p)) == 1 and queue_ids(p)[0] != crossing_id)
    page.get(f"{kiosk.url}/officer/review/{queue_ids(page)[0]}")
    assert page.find_elements(By.ID, "photo") == []
    shown = page.find_element(By.ID, "document").text
    assert "not shown: JPEG 2000, which this screen cannot display" in shown


def test_a_referred_cbic_holder_s_portrait_reaches_the_officer(page, kiosk, card_slot) -> None:
    """Through pcscd: the tap reads no portrait; once the result is shown, the lane reads it
    from the card still on the reader, and the officer sees the issuer's picture."""
    face = (SAMPLES_DIR / "specimen-face.jpg").read_bytes()
    listed = issue_card(sample("resident-worker"), ISSUER, portrait=face)  # on the list
    kiosk.tap(card_slot, CbicCard.from_image(listed))
    log_in(page, kiosk)
    wait_until(page, lambda p: len(queue_ids(p)) == 1)
    (crossing_id,) = queue_ids(page)

    def photo_shown(p) -> bool:
        p.get(f"{kiosk.url}/officer/review/{crossing_id}")
        found = p.find_elements(By.ID, "photo")
        return bool(found) and p.execute_script("return arguments[0].naturalWidth", found[0]) > 0

    wait_until(page, photo_shown)
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{kiosk.url}/officer/review/{crossing_id}/photo",
            headers={"Cookie": "; ".join(f"{c['name']}={c['value']}" for c in page.get_cookies())},
        ),
        timeout=5,
    ) as answer:
        assert answer.read() == face  # the card's own portrait, byte for byte


# -- the officer screen is protected ---------------------------------------------------------


def test_the_officer_screen_without_login_redirects_to_the_login(page, kiosk) -> None:
    for path in ("/officer", "/officer/review/anything", "/officer/events"):
        page.get(kiosk.url + path)
        assert page.current_url == kiosk.url + "/officer/login", path
        assert page.find_element(By.ID, "login")


def test_a_wrong_pin_is_refused_and_repeated_ones_lock_the_officer_out(page, kiosk) -> None:
    log_in(page, kiosk, pin="000000")
    assert page.find_element(By.ID, "error").text == "Wrong officer id or PIN."
    assert page.get_cookies() == []
    log_in(page, kiosk, officer_id="BDF-9999", pin=PIN)  # an officer not in the directory
    assert page.find_element(By.ID, "error").text == "Wrong officer id or PIN."
    log_in(page, kiosk, pin="111111")
    log_in(page, kiosk, pin="222222")  # third wrong PIN for this officer (login_attempts=3)
    log_in(page, kiosk)  # the right PIN, too late
    assert "Too many wrong PINs" in page.find_element(By.ID, "error").text
    assert page.get_cookies() == []


def test_the_session_cookie_is_httponly_strict_and_logout_ends_it(page, kiosk) -> None:
    log_in(page, kiosk)
    wait_until(page, lambda p: p.current_url == kiosk.url + "/officer")
    (cookie,) = page.get_cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/officer"
    assert page.execute_script("return document.cookie") == ""

    # The cookie alone does not make a POST: the CSRF token and our own origin are needed.
    logout = kiosk.url + "/officer/logout"
    headers = {"Cookie": f"{cookie['name']}={cookie['value']}", "Origin": kiosk.url}
    assert post(logout, {}, headers) == 403
    assert post(logout, {"csrf": "guess"}, headers) == 403
    assert post(logout, {}, headers | {"Origin": "http://evil.example"}) == 403
    page.refresh()
    assert page.current_url == kiosk.url + "/officer"  # still logged in

    page.find_element(By.ID, "logout").click()
    wait_until(page, lambda p: p.current_url == kiosk.url + "/officer/login")
    assert page.get_cookies() == []
    page.get(kiosk.url + "/officer")
    assert page.current_url == kiosk.url + "/officer/login"


def post(url: str, form: dict[str, str], headers: dict[str, str]) -> int:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_all_assets_are_local_and_locked_down_by_the_content_policy(page, kiosk) -> None:
    page.get(kiosk.url + "/")
    html = page.page_source
    external = re.findall(r"""(?:src|href)=["'](?!/)[^"']+""", html)
    assert external == []
    with urllib.request.urlopen(kiosk.url + "/", timeout=5) as response:
        policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


# -- the server itself -----------------------------------------------------------------------


def test_the_pages_refuse_a_non_loopback_host_and_report_their_health(tmp_path) -> None:
    async def scenario() -> None:
        with Outbox(tmp_path / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as outbox:
            lane = Lane(
                LaneConfig.from_dict({"site": "s", "lane": "lane-1", "direction": "entry"}),
                outbox=outbox,
                screener=StoreScreener(WatchlistStore(tmp_path / "w.db")),
                issuers=TRUST,
                cscas=PKI.trust_store(),
            )
            with pytest.raises(KioskPagesError, match="loopback only"):
                KioskPages(lane, host="0.0.0.0")
            with pytest.raises(KioskPagesError, match="language 'fr'"):
                KioskPages(lane, language="fr")
            pages = KioskPages(lane, port=0)
            assert pages.component()["state"] == "starting"
            async with pages:
                assert pages.component()["state"] == "ok"
                assert re.fullmatch(r"http://127\.0\.0\.1:\d+", pages.url)
                busy = KioskPages(lane, port=int(pages.url.rsplit(":", 1)[1]))
                with pytest.raises(OSError):
                    await busy.__aenter__()
                assert busy.component()["state"] == "down"
                assert "cannot listen" in busy.component()["detail"]
            assert pages.component() | {"since": None} == {
                "state": "down",
                "since": None,
                "detail": "stopped",
            }

    asyncio.run(scenario())

"""Issue 14: HTTP parameters from outside. Whatever a browser or a script puts in the query
string or the path, every page of the console answers with a page, a redirect or a 4xx naming
the bad parameter, never a 500.

Run as the administrator, a supervisor and an auditor (between them every page is theirs)
through the session's console (``console_web``: SQLite, an account per role), with a valid
purpose half of the time so that the pages that read personal data get past their purpose
form.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import threading
from collections.abc import Iterator
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_lane import PKI, TRUST

from console.audit import PURPOSES
from console.store.search import CrossingQuery
from console.web.purpose import PURPOSE, PURPOSE_TEXT
from edge.lane import Lane, LaneConfig, StoreScreener
from edge.screening.store import WatchlistStore
from edge.ui import KioskPages, OfficerDirectory, add_officer
from edge.uplink.outbox import Outbox
from mqtt_schemas.envelope import StaticClock

#: Every parameter a console view reads from the query string (grep request.args), and some.
PARAMETERS = sorted(
    {
        *CrossingQuery.PARAMS,
        "after",
        "page",
        "rule",
        "device",
        "site",
        "state",
        "post",
        "command",
        "user",
        "action",
        "since",
        "until",
        "from",
        "to",
        "seq",
        "format",
        "day",
        "limit",
    }
)
HOSTILE_VALUES = [
    b"",
    b"-1",
    b"0",
    b"9" * 5000,
    b"1e999",
    b"NaN",
    b"2026-02-30",
    b"9999-12-31",
    b"0000-01-01",
    b"\x00",
    b"a\nb",
    b"\xed\xa0\x80",  # a surrogate, UTF-8-encoded: not UTF-8
    b"\xff\xfe",
    b"../../etc/passwd",
    b"' OR 1=1 --",
    b"%",
    b"x" * 10_000,
]
#: What a client can put in a query string: any bytes, percent-encoded.
values = (
    st.sampled_from(HOSTILE_VALUES)
    | st.binary(max_size=40)
    | st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass"))
)


def get_routes(app) -> list[tuple[str, tuple[str, ...]]]:
    """``(rule, its variables)`` of every GET page but the style sheets and logging out."""
    found = []
    for rule in app.url_map.iter_rules():
        if "GET" in (rule.methods or ()) and rule.endpoint not in ("static", "auth.logout"):
            found.append((rule.rule, tuple(rule.arguments)))
    return sorted(found)


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, tuple[str, ...]]]) -> tuple[str, str]:
    """A path of one of ``routes`` (its variables filled in) and a raw query string."""
    rule, arguments = draw(st.sampled_from(routes))
    path = rule
    for name in arguments:
        value = quote_from_bytes(draw(values) or b"x", safe="")
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
    query = draw(st.lists(st.tuples(st.sampled_from(PARAMETERS), values), max_size=4))
    if draw(st.booleans()):
        query.append((PURPOSE, draw(st.sampled_from(sorted(PURPOSES))).encode()))
        query.append((PURPOSE_TEXT, draw(values)))
    return path, "&".join(f"{quote(name)}={quote_from_bytes(value)}" for name, value in query)


def test_any_query_on_any_page_is_answered_without_a_server_error(console_web) -> None:
    # The administrator sees the fleet and the accounts, the supervisor the referrals and the
    # crossings of a post, the auditor the audit trail: together, every page's own code.
    clients = {role: console_web.client(role) for role in ("admin", "supervisor", "auditor")}
    routes = get_routes(console_web.app)
    assert len(routes) > 10  # the walk sees the pages (an empty map would pass anything)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.sampled_from(sorted(clients)), requests(routes))
    @example("supervisor", ("/crossings/search", "purpose=investigation&since=" + "9" * 5000))
    @example("auditor", ("/audit/", "seq=%ED%A0%80"))
    def check(role: str, request: tuple[str, str]) -> None:
        path, query = request
        response = clients[role].get(path, query_string=query)
        assert response.status_code < 500, (role, path, query, response.get_data(True)[:300])

    check()


# -- the kiosk's own pages (traveller screen, officer review) --------------------------------------

OFFICER, PIN = "BDF-2231", "482916"
KIOSK_PATHS = [
    "/",
    "/officer",
    "/officer/login",
    "/officer/logout",
    "/officer/review/{}",
    "/officer/review/{}/photo",
    "/officer/review/{}/decision",
]
FORM_FIELDS = ["csrf", "officer_id", "pin", "decision", "reason", "hit_id"]


@pytest.fixture(scope="module")
def kiosk_pages(tmp_path_factory) -> Iterator[tuple[KioskPages, str]]:
    """The kiosk pages of a lane, served from a loop in a thread; and an officer's session
    cookie, logged in as the kiosk's browser does."""
    directory = tmp_path_factory.mktemp("kiosk-pages")
    add_officer(directory / "officers.json", OFFICER, PIN)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with Outbox(directory / "kiosk.db", "kiosk-bz-se-01", StaticClock()) as outbox:

        async def start() -> KioskPages:
            lane = Lane(
                LaneConfig.from_dict({"site": "s", "lane": "lane-1", "direction": "entry"}),
                outbox=outbox,
                screener=StoreScreener(WatchlistStore(directory / "w.db")),
                issuers=TRUST,
                cscas=PKI.trust_store(),
            )
            pages = KioskPages(
                lane,
                port=0,
                officers=OfficerDirectory.load(directory / "officers.json"),
                logins_file=directory / "officer-logins.json",
            )
            return await pages.__aenter__()

        pages = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        try:
            status, headers, _ = kiosk_request(
                pages, "POST", "/officer/login", f"officer_id={OFFICER}&pin={PIN}".encode()
            )
            assert status == 303, status
            cookie = headers["Set-Cookie"].split(";", 1)[0]
            yield pages, cookie
        finally:
            stop = pages.__aexit__(None, None, None)
            asyncio.run_coroutine_threadsafe(stop, loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def kiosk_request(
    pages: KioskPages, method: str, path: str, body: bytes = b"", cookie: str | None = None
) -> tuple[int, dict[str, str], str]:
    """One request as the kiosk's browser sends it (its Host and Origin)."""
    host_port = pages.url.removeprefix("http://")
    connection = http.client.HTTPConnection(host_port, timeout=10)
    headers = {"Host": host_port, "Origin": pages.url}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if cookie:
        headers["Cookie"] = cookie
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return (
            response.status,
            dict(response.getheaders()),
            response.read(2000).decode("utf-8", "replace"),
        )
    finally:
        connection.close()


@st.composite
def kiosk_requests(draw: st.DrawFn) -> tuple[str, str, bytes, bool]:
    path = draw(st.sampled_from(KIOSK_PATHS)).format(
        quote_from_bytes(draw(values) or b"x", safe="")
    )
    if draw(st.booleans()):
        path += "?" + quote_from_bytes(draw(values), safe="=&")
    fields = draw(st.lists(st.tuples(st.sampled_from(FORM_FIELDS), values), max_size=4))
    body = "&".join(f"{name}={quote_from_bytes(value)}" for name, value in fields).encode()
    return draw(st.sampled_from(["GET", "POST"])), path, body, draw(st.booleans())


def test_any_request_to_the_kiosk_pages_is_answered_without_a_server_error(kiosk_pages) -> None:
    pages, cookie = kiosk_pages

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(kiosk_requests())
    @example(("POST", "/officer/login", b"officer_id=BDF-2231&pin=%ED%A0%80", False))
    def check(request: tuple[str, str, bytes, bool]) -> None:
        method, path, body, signed_in = request
        status, _, text = kiosk_request(pages, method, path, body, cookie if signed_in else None)
        assert status < 500, (method, path, body, text[:300])

    check()


@pytest.mark.parametrize("token", [b"%C3%A9", b"%80"])
def test_a_non_ascii_csrf_token_is_refused_not_a_server_error(kiosk_pages, token: bytes) -> None:
    pages, cookie = kiosk_pages
    status, _, _ = kiosk_request(pages, "POST", "/officer/logout", b"csrf=" + token, cookie)
    assert status == 403

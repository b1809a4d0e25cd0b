"""The kiosk pages: the traveller's screen and the officers' review, served by the agent itself.

One aiohttp server inside the agent's asyncio process, on loopback (the kiosk's own browser is
the only client). The pages never decide: the traveller's screen mirrors the lane's events, and
the officer screen reads the lane's review queue and forwards decisions to
:meth:`Lane.officer_decide`, which records them in the outbox; no network is needed for any of
it, and every asset is served from this package (no CDN, no web fonts).

Routes::

    GET  /                                  traveller screen (public: it is on the lane's display)
    GET  /traveller/events                  its live feed (Server-Sent Events)
    GET  /officer/login, POST /officer/login, POST /officer/logout
    GET  /officer                           the queue of referred travellers (login required)
    GET  /officer/events                    the queue's live feed (login required)
    GET  /officer/review/{crossing_id}      one traveller: document, photo, hits and why
    GET  /officer/review/{crossing_id}/photo
    POST /officer/review/{crossing_id}/decision   accept / deny / escalate, with a reason

Protection of the officer pages: a PIN login (:class:`OfficerDirectory`), a session cookie that
is HttpOnly, SameSite=Strict and scoped to ``/officer``; every POST carries the session's CSRF
token and a same-origin ``Origin``; a content security policy allows nothing but this server.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from edge.lane import Lane, LaneEvent
from edge.lane.reviews import AlreadyDecided
from edge.uplink.errors import OutboxFull
from mqtt_schemas import PayloadError
from mqtt_schemas.health import ComponentState, component_entry

from .logins import LoginGuard
from .officers import OFFICER_ID_PATTERN, OfficerDirectory
from .sessions import OfficerSession, SessionStore
from .views import EntryLookup, idle_view, queue_view, review_view, traveller_view

__all__ = ["LANGUAGES", "KioskPages", "KioskPagesError"]

log = logging.getLogger(__name__)

#: The traveller screen's languages, in the order its button cycles through them.
LANGUAGES = ("en", "es")
COOKIE = "borderlane_officer"
DECISIONS = ("accept", "deny", "escalate")
_HERE = Path(__file__).parent
_CLOSE = object()  # tells a live stream that the server is stopping
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make Origin "null"
    "X-Frame-Options": "DENY",
}


class KioskPagesError(ValueError):
    """The pages cannot be served as configured (a non-loopback host, a language we lack)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KioskPages:
    """The kiosk's local web pages; an async context manager that serves while open.

    ``officers`` is who may log in (None: nobody can, the officer screen says so). ``watchlist``
    looks up a hit's entry for the officer (``WatchlistStore.get``; by default the lane's
    screener's store when it has one). Port 0 binds a free port (:attr:`url` tells which).
    """

    def __init__(
        self,
        lane: Lane,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        officers: OfficerDirectory | None = None,
        language: str = "en",
        allow_remote: bool = False,
        watchlist: EntryLookup | None = None,
        session_idle_s: float = 600.0,
        keepalive_s: float = 15.0,
        queue_refresh_s: float = 5.0,
        login_attempts: int = 5,
        logins_file: Path | None = None,
        hosts: tuple[str, ...] = (),
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise KioskPagesError(
                f"kiosk pages bind to loopback only, not {host!r} (the officer screen must not "
                "be reachable from the network; pass allow_remote=True to override)"
            )
        if language not in LANGUAGES:
            raise KioskPagesError(f"language {language!r}: the pages offer {', '.join(LANGUAGES)}")
        self.lane = lane
        self.host, self.port = host, port
        self.officers = officers
        self.language = language
        store = getattr(getattr(lane, "screener", None), "store", None)
        self.watchlist = watchlist or (store.get if store is not None else None)
        self.keepalive_s = keepalive_s
        self.queue_refresh_s = queue_refresh_s
        self.sessions = SessionStore(idle_s=session_idle_s)
        self.logins = LoginGuard(logins_file, free_attempts=login_attempts)
        self.hosts = tuple(hosts)
        """Names besides loopback's under which the pages may be asked for (the Host header)."""
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self._traveller_now = idle_view()
        self._traveller_streams: set[asyncio.Queue[Any]] = set()
        self._officer_streams: set[asyncio.Queue[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._health: tuple[ComponentState, datetime, str] = ("starting", datetime.now(UTC), "")

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> KioskPages:
        app = web.Application(middlewares=[self._guard])
        self._routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self._set_health("down", f"cannot listen on {self.host}:{self.port}: {exc.strerror}")
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        self.lane.add_listener(self._on_lane_event)
        self._refresher = asyncio.create_task(self._refresh_queue())
        self._set_health("ok")
        log.info("kiosk pages at %s", self._url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(ValueError):
            self.lane.remove_listener(self._on_lane_event)
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for queue in (*self._traveller_streams, *self._officer_streams):
            queue.put_nowait(_CLOSE)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._set_health("down", "stopped")

    @property
    def url(self) -> str:
        """Where the pages are, e.g. ``http://127.0.0.1:8080`` (once entered)."""
        if self._url is None:
            raise RuntimeError("the kiosk pages are not serving yet (use `async with`)")
        return self._url

    def component(self) -> dict[str, Any]:
        """The ``components.ui`` entry of a heartbeat: degraded, saying so, while someone is
        guessing officer PINs (:meth:`LoginGuard.alarm`)."""
        state, since, _ = self._health
        alarm = self.logins.alarm()
        if state == "ok" and alarm is not None:
            self._set_health("degraded", alarm)
        elif state == "degraded" and alarm is None:
            self._set_health("ok")
        elif state == "degraded" and alarm is not None:
            self._health = (state, since, alarm)
        return component_entry(*self._health)

    def _set_health(self, state: ComponentState, detail: str = "") -> None:
        since = self._health[1] if self._health[0] == state else datetime.now(UTC)
        self._health = (state, since, detail)

    # -- following the lane -------------------------------------------------------------------

    def _on_lane_event(self, event: LaneEvent) -> None:
        view = traveller_view(event)
        if view is not None and view != self._traveller_now:
            self._traveller_now = view
            for queue in self._traveller_streams:
                queue.put_nowait(view)
        if event.review is not None:  # a new referral: every officer's queue shows it now
            self._queue_changed()

    def _queue_changed(self) -> None:
        for queue in self._officer_streams:
            queue.put_nowait(None)

    async def _refresh_queue(self) -> None:
        """Items also leave the queue by themselves (retention purge): look again now and then."""
        while True:
            await asyncio.sleep(self.queue_refresh_s)
            self._queue_changed()

    # -- plumbing -----------------------------------------------------------------------------

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._traveller_page)
        app.router.add_get("/traveller/events", self._traveller_events)
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/officer", self._queue_page)
        app.router.add_get("/officer/", self._queue_page)
        app.router.add_get("/officer/login", self._login_page)
        app.router.add_post("/officer/login", self._login)
        app.router.add_post("/officer/logout", self._logout)
        app.router.add_get("/officer/events", self._officer_events)
        app.router.add_get("/officer/review/{crossing_id}", self._review_page)
        app.router.add_get("/officer/review/{crossing_id}/photo", self._photo)
        app.router.add_post("/officer/review/{crossing_id}/decision", self._decide)
        app.router.add_static("/static", _HERE / "static", append_version=True)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        """Security headers on every answer; a POST from another origin refused; and any
        unexpected failure shown as a plain page (logged here), never a traceback."""
        if not self._known_host(request):
            # DNS rebinding: a page of another site whose name now points at this kiosk sends
            # its own name as Host (and Origin), so the Origin check alone would pass.
            log.warning("kiosk page refused: request for another host name")
            response: web.StreamResponse = self._page(
                "error.html", status=421, message="This page is not served under that name."
            )
        elif request.method == "POST" and not self._same_origin(request):
            response = self._page(
                "error.html", status=403, message="This form was not sent by the kiosk's own page."
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # redirects and plain refusals
                exc.headers.update(_SECURITY_HEADERS)
                raise
            except (asyncio.CancelledError, ConnectionError):
                raise
            except Exception:
                log.exception("kiosk page %s failed", request.path)
                response = self._page(
                    "error.html",
                    status=500,
                    message="Something went wrong on this page. The lane keeps working.",
                )
        if not response.prepared:
            response.headers.update(_SECURITY_HEADERS)
            if request.path.startswith("/officer"):
                response.headers["Cache-Control"] = "no-store"
        return response

    def _known_host(self, request: web.Request) -> bool:
        """Whether the Host header names these pages: loopback (127.0.0.1, ::1, localhost) or
        one of :attr:`hosts`, on the port they listen on."""
        if self._url is None:
            return False
        port = self._url.rsplit(":", 1)[1]
        names = {"127.0.0.1", "[::1]", "localhost", *self.hosts}
        return request.headers.get("Host", "") in {f"{name}:{port}" for name in names}

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # browsers send Origin with every POST; a missing one is suspicious
            return False
        return origin == f"{request.scheme}://{request.host}"

    def _page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self._templates.get_template(template).render(static=self._static, **context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    @staticmethod
    def _static(name: str) -> str:
        return f"/static/{name}"

    def _session(self, request: web.Request, *, touch: bool = True) -> OfficerSession | None:
        return self.sessions.get(request.cookies.get(COOKIE), touch=touch)

    def _officer(self, request: web.Request) -> OfficerSession:
        session = self._session(request)
        if session is None:
            raise web.HTTPSeeOther("/officer/login")
        return session

    async def _checked_form(self, request: web.Request, session: OfficerSession) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        # Bytes, not text: compare_digest refuses a str holding anything but ASCII (a TypeError,
        # so a 500) and a hostile form may send any character.
        sent = form.get("csrf", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(sent, session.csrf.encode("ascii")):
            raise web.HTTPForbidden(text="stale form: reload the page and try again")
        return form

    async def _stream(
        self,
        request: web.Request,
        streams: set[asyncio.Queue[Any]],
        next_payload: Callable[[Any], Any],
        first: Any,
    ) -> web.StreamResponse:
        """A Server-Sent Events stream: ``first`` now, then ``next_payload(item)`` for each item
        put on this stream's queue (None from ``next_payload``: the stream ends)."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        response.headers.update(_SECURITY_HEADERS)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        streams.add(queue)
        try:
            await response.prepare(request)
            await response.write(b"retry: 1000\n\n")  # the browser reconnects after a second
            payload = first
            while payload is not None:
                await response.write(f"data: {json.dumps(payload)}\n\n".encode())
                payload = None
                while payload is None:
                    try:
                        item = await asyncio.wait_for(queue.get(), self.keepalive_s)
                    except TimeoutError:
                        await response.write(b": keepalive\n\n")
                        continue
                    if item is _CLOSE:
                        return response
                    payload = next_payload(item)
                    if payload is _CLOSE:
                        return response
        except ConnectionError:
            pass  # the browser went away (page reloaded, kiosk browser restarted)
        finally:
            streams.discard(queue)
        return response

    # -- traveller ----------------------------------------------------------------------------

    async def _traveller_page(self, request: web.Request) -> web.Response:
        return self._page(
            "traveller.html", view=self._traveller_now, language=self.language, languages=LANGUAGES
        )

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)  # browsers ask; a 404 would only fill the kiosk's logs

    async def _traveller_events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(
            request, self._traveller_streams, lambda view: view, self._traveller_now
        )

    # -- officers: login ----------------------------------------------------------------------

    async def _login_page(self, request: web.Request) -> web.Response:
        if self._session(request) is not None:
            raise web.HTTPSeeOther("/officer")
        return self._page("login.html", error=None, officer_id="", configured=bool(self.officers))

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        officer_id = str(form.get("officer_id", "")).strip()
        pin = str(form.get("pin", ""))

        def refused(error: str, status: int) -> web.Response:
            return self._page(
                "login.html",
                status=status,
                error=error,
                officer_id=officer_id if OFFICER_ID_PATTERN.fullmatch(officer_id) else "",
                configured=bool(self.officers),
            )

        if not self.officers:
            return refused("No officers are set up on this kiosk.", 403)
        if not OFFICER_ID_PATTERN.fullmatch(officer_id) or not pin:
            return refused("Enter your officer id and PIN.", 400)
        source = request.remote or "unknown"
        wait = self.logins.wait_s(officer_id, source)
        if wait > 0:
            log.warning("officer login not tried: wrong PINs before, %.0f s to wait", wait)
            minutes = max(1, round(wait / 60))
            return refused(
                f"Too many wrong PINs: try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                429,
            )
        if not await asyncio.to_thread(self.officers.verify, officer_id, pin):
            self.logins.failed(officer_id, source)
            log.warning("officer login refused: wrong id or PIN for %s", officer_id)
            alarm = self.logins.alarm()
            if alarm is not None:
                log.warning("officer logins: %s", alarm)
            return refused("Wrong officer id or PIN.", 401)
        self.logins.succeeded(officer_id)
        session = self.sessions.create(officer_id)
        log.info("officer %s logged in", officer_id)
        response = web.HTTPSeeOther("/officer")
        response.set_cookie(
            COOKIE, session.token, path="/officer", httponly=True, samesite="Strict"
        )
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        session = self._officer(request)
        await self._checked_form(request, session)
        self.sessions.end(session.token)
        log.info("officer %s logged out", session.officer_id)
        response = web.HTTPSeeOther("/officer/login")
        response.del_cookie(COOKIE, path="/officer")
        raise response

    # -- officers: queue and review -----------------------------------------------------------

    def _queue(self) -> list[dict[str, Any]]:
        return queue_view(self.lane.reviews.pending())

    async def _queue_page(self, request: web.Request) -> web.Response:
        session = self._officer(request)
        notice, session.notice = session.notice, None
        return self._page(
            "queue.html", session=session, items=self._queue(), notice=notice, error=None
        )

    async def _officer_events(self, request: web.Request) -> web.StreamResponse:
        session = self._officer(request)

        def next_payload(_: Any) -> Any:
            if self.sessions.get(session.token, touch=False) is None:
                return _CLOSE  # logged out or timed out: the page reloads to the login
            return {"queue": self._queue()}

        return await self._stream(
            request, self._officer_streams, next_payload, {"queue": self._queue()}
        )

    def _missing(self, session: OfficerSession) -> web.Response:
        return self._page(
            "queue.html",
            status=404,
            session=session,
            items=self._queue(),
            notice=None,
            error="No referred traveller with that crossing id on this kiosk.",
        )

    async def _review_page(self, request: web.Request) -> web.Response:
        session = self._officer(request)
        item = self.lane.reviews.get(request.match_info["crossing_id"])
        return self._missing(session) if item is None else self._review(session, item)

    def _review(
        self, session: OfficerSession, item: Any, *, status: int = 200, **form: Any
    ) -> web.Response:
        return self._page(
            "review.html",
            status=status,
            session=session,
            item=review_view(item, self.watchlist),
            decisions=DECISIONS,
            error=form.get("error"),
            chosen=form.get("decision", ""),
            reason=form.get("reason", ""),
        )

    async def _photo(self, request: web.Request) -> web.Response:
        self._officer(request)
        item = self.lane.reviews.get(request.match_info["crossing_id"])
        photo = ((item.personal if item is not None else None) or {}).get("photo") or {}
        try:
            image = base64.b64decode(photo["data"], validate=True)
            media_type = str(photo["media_type"])
        except (KeyError, TypeError, binascii.Error):
            raise web.HTTPNotFound(text="no photo for this traveller") from None
        if media_type not in ("image/jpeg", "image/png"):  # Chromium shows no JPEG 2000
            raise web.HTTPNotFound(text="the photo is in a format the kiosk browser cannot show")
        return web.Response(body=image, content_type=media_type)

    async def _decide(self, request: web.Request) -> web.Response:
        session = self._officer(request)
        form = await self._checked_form(request, session)
        item = self.lane.reviews.get(request.match_info["crossing_id"])
        if item is None:
            return self._missing(session)
        decision = form.get("decision", "")
        reason = form.get("reason", "").strip()

        def refused(error: str, status: int) -> web.Response:
            return self._review(
                session, item, status=status, error=error, decision=decision, reason=reason
            )

        if item.status not in ("open", "escalated"):
            return refused(f"This traveller was already decided ({item.status}).", 409)
        if decision not in DECISIONS:
            return refused("Choose accept, deny or escalate.", 400)
        if not reason:
            return refused("A reason is required: write why you decide so.", 400)
        if len(reason) > 1000:
            return refused("The reason is too long (1000 characters at most).", 400)
        hits = (item.personal or {}).get("hits") or []
        try:
            record_id = self.lane.officer_decide(
                item.crossing_id,
                officer_id=session.officer_id,
                decision=decision,
                reason=reason,
                hit_id=hits[0].get("hit_id") if hits else None,
            )
        except AlreadyDecided as exc:  # another officer decided meanwhile
            return refused(f"This traveller was already decided ({exc.status}).", 409)
        except KeyError:
            return refused("This traveller is no longer in the queue.", 409)
        except OutboxFull:
            log.error("officer decision not recorded: the outbox is full")
            return refused(
                "The kiosk's storage is full: the decision was NOT recorded. Call a technician.",
                503,
            )
        except PayloadError as exc:
            return refused(f"The decision cannot be recorded: {exc}", 400)
        log.info(
            "officer %s: %s on crossing %s (record %s)",
            session.officer_id,
            decision,
            item.crossing_id,
            record_id,
        )
        done = {"accept": "Accepted", "deny": "Denied", "escalate": "Escalated"}[decision]
        session.notice = f"{done}: crossing {item.crossing_id[-12:]} recorded."
        self._queue_changed()
        raise web.HTTPSeeOther("/officer")

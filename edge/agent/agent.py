"""The agent: every part of the kiosk in one asyncio process, supervised.

::

    config = load_config("kiosk.toml", agent_version=__version__)
    outcome = asyncio.run(Agent(config).run())      # "stop" or "restart"

Parts (each a :class:`~edge.agent.supervisor.Supervisor` part, restarted on failure):

========== =================================================================================
lane       the state machine (:mod:`edge.lane`) and its housekeeping (review retention)
card-reader PC/SC watcher; taps and removals go to the lane
mrz-reader  serial MRZ reader (absent when the configuration has no ``[mrz_reader]``)
camera      picamera2, V4L2 or virtual camera (absent without ``[camera]``); ``agent.camera``
uplink      MQTT session: outbox delivery, acks, commands, watchlist deltas
health      heartbeat every ``health.interval_s``
ui          the kiosk pages on loopback (traveller screen, officer review)
========== =================================================================================

What is opened before any part starts, and fails the start with one line if it cannot be used:
the kiosk database (outbox, lane state, reviews), the watchlist store, the trust lists. Nothing
in the lane's path needs the network: with the broker gone for days the lane decides, records
and shows as usual, and the outbox keeps every record until the console acks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from edge.devices.camera import CameraStatus, ManagedCamera, open_camera
from edge.devices.card_reader import CardReader
from edge.devices.mrz_reader import MrzReader
from edge.documents.cbic import IssuerTrustList
from edge.documents.emrtd.passive_auth import CscaStore
from edge.lane import Lane, StoreScreener
from edge.screening.delta import load_trust
from edge.screening.store import StoreError, WatchlistStore
from edge.screening.sync import WatchlistSync
from edge.screening.transport import Offline
from edge.trust import TrustStoreError, load_csca_store, load_trust_list
from edge.ui.officers import OfficerDirectory, OfficerDirectoryError
from edge.uplink import Outbox, Uplink
from edge.uplink.errors import NotConnected, OutboxError
from edge.uplink.outbox import private_database
from mqtt_schemas.envelope import Clock, SystemClock, format_time
from mqtt_schemas.health import component_entry
from mqtt_schemas.watchlist import WatchlistError

from .certificates import CertificateKeeper
from .commands import CommandError, CommandRunner, diagnostics_action, ping_action
from .config import AgentConfig, AgentConfigError, load_config
from .encryption import EncryptionError, require_encrypted
from .health import heartbeat, run_heartbeat, system_figures
from .preflight import check as preflight_check
from .preflight import component as preflight_component
from .supervisor import Part, Supervisor
from .systemd import Notifier
from .transport import UplinkTransport

__all__ = ["Agent", "AgentStartError", "Decommissioned", "Outcome"]

log = logging.getLogger(__name__)

Outcome = Literal["stop", "restart"]
DECOMMISSIONED = "decommissioned"
"""A file in the data directory: this kiosk was decommissioned; the agent refuses to start."""
DECOMMISSION_WAIT_S = 600.0
"""How long a decommission waits for the outbox to drain before it gives up (and erases
nothing)."""


class Decommissioned(Exception):
    """The kiosk was decommissioned: the agent does not start (exit status 3, no restart)."""


HOUSEKEEPING_S = 600.0
"""How often the lane's review queue is purged of personal data past its retention (more often
for a retention under 100 minutes: a tenth of it, at least every second)."""
SECTIONS = tuple(f.name for f in dataclasses.fields(AgentConfig) if f.name != "path")
"""The configuration's tables, compared on config-reload."""
REFUSED = {
    "disk": "storage full: new crossings refused, travellers referred to an officer",
    "budget": "outbox full (unacked records): new crossings refused, travellers referred to an "
    "officer",
}
"""The heartbeat's ``lane`` detail while the outbox refuses records (:meth:`Outbox.refusal`)."""
RESTART_DELAY_S = 0.5
"""After answering agent-restart or config-reload: time for the answer to leave."""
CAMERA_HEALTH: dict[CameraStatus, Any] = {
    CameraStatus.READY: "ok",
    CameraStatus.DEGRADED: "degraded",
    CameraStatus.DOWN: "down",
}
"""The camera's own states as the heartbeat's component states."""


class AgentStartError(Exception):
    """Something the agent needs before it can serve a traveller is unusable (one line)."""


class Agent:
    """The kiosk agent; see the module docstring."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.started = time.monotonic()
        self.supervisor = Supervisor(
            restart_initial_s=config.agent.restart_initial_s,
            restart_max_s=config.agent.restart_max_s,
        )
        self.outbox: Outbox | None = None
        self.store: WatchlistStore | None = None
        self.lane: Lane | None = None
        self.sync: WatchlistSync | None = None
        self.commands: CommandRunner | None = None
        self.uplink: Uplink | None = None
        self.card_reader: CardReader | None = None
        self.mrz_reader: MrzReader | None = None
        self.camera: ManagedCamera | None = None
        """The camera while its part runs (the lane captures through it), else None."""
        self.pages: Any = None
        broker = config.uplink.broker
        self.certificates = CertificateKeeper(
            broker.cert_file,
            broker.key_file,
            (broker.host, broker.port, broker.ca_file),
            config.enrollment,
        )
        self._stop = asyncio.Event()
        self._outcome: Outcome = "stop"
        self._decommission_wait = DECOMMISSION_WAIT_S
        self._decommissioned = False
        self._preflight: dict[str, Any] | None = None

    @property
    def agent_version(self) -> str:
        return self.config.uplink.agent_version

    # -- start and stop -----------------------------------------------------------------------

    def preflight(self) -> None:
        """Check what the configuration names (:mod:`edge.agent.preflight`) before :meth:`open`:
        each problem is one log line; a fatal one refuses the start (:class:`AgentStartError`),
        warnings go in every heartbeat (component ``preflight``) for the console to show."""
        if (self.config.agent.data_dir / DECOMMISSIONED).exists():
            return  # open() refuses with Decommissioned (exit 3): its key was erased on purpose
        findings = preflight_check(self.config)
        for finding in findings:
            (log.error if finding.fatal else log.warning)("preflight: %s", finding)
        fatal = sum(finding.fatal for finding in findings)
        if fatal:
            raise AgentStartError(
                f"{fatal} fatal problem(s) with what {self.config.path} names, logged above "
                "(borderlane-edge run --check lists them)"
            )
        self._preflight = preflight_component(findings, datetime.now(UTC))

    def open(self) -> None:
        """Open what the lane needs; raise :class:`AgentStartError` with one line if unusable."""
        config = self.config
        if config.storage.encrypted:  # before anything is read or written there
            for directory in dict.fromkeys((config.agent.data_dir, config.watchlist.db.parent)):
                try:
                    require_encrypted(directory)
                except EncryptionError as exc:
                    raise AgentStartError(f"storage.encrypted: {exc}") from None
        marker = config.agent.data_dir / DECOMMISSIONED
        if marker.exists():
            raise Decommissioned(
                f"this kiosk was decommissioned ({marker.read_text().strip()}): enroll it again"
            )
        try:
            # Everything in it is personal data or guards it: private, whatever the umask (the
            # unit's UMask=0077 and StateDirectoryMode=0700 say the same; this holds without).
            config.agent.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            config.agent.data_dir.chmod(0o700)
        except OSError as exc:
            raise AgentStartError(f"agent.data_dir: {exc.strerror or exc}") from None
        try:
            self.outbox = Outbox(
                config.agent.kiosk_db, config.agent.device_id, self.clock, config.uplink.outbox
            )
        except (OutboxError, OSError) as exc:
            raise AgentStartError(f"kiosk database: {exc}") from None
        watchlist = config.watchlist
        try:
            trusted = load_trust(directory=watchlist.trusted_keys) if watchlist.trusted_keys else {}
            anchors = (
                load_trust(directory=watchlist.trust_anchors) if watchlist.trust_anchors else {}
            )
            if watchlist.trust_anchors and not anchors:
                raise AgentStartError(
                    f"watchlist.trust_anchors: no anchor in {watchlist.trust_anchors}"
                )
            private_database(watchlist.db)  # the list names people: 0600 before SQLite opens it
            # the sync keeps the store current and creates it (version 0) on a new kiosk
            self.sync = WatchlistSync(
                watchlist.db, trusted, config.agent.device_id, anchors=anchors
            )
            self.store = WatchlistStore(watchlist.db, readonly=True)
        except (StoreError, WatchlistError, OSError) as exc:
            raise AgentStartError(f"watchlist: {exc}") from None
        try:
            issuers = (
                load_trust_list(config.trust.issuers)
                if config.trust.issuers
                else IssuerTrustList.from_pem({})
            )
            cscas = load_csca_store(config.trust.csca) if config.trust.csca else CscaStore()
        except TrustStoreError as exc:
            raise AgentStartError(f"trust: {exc}") from None
        try:  # without a directory the officer pages refuse every login
            self.officers = (
                OfficerDirectory.load(config.ui.officers) if config.ui.officers else None
            )
        except OfficerDirectoryError as exc:
            raise AgentStartError(f"ui.officers: {exc}") from None
        self.lane = Lane(
            config.lane,
            outbox=self.outbox,
            screener=StoreScreener(self.store),
            issuers=issuers,
            cscas=cscas,
        )
        self.commands = CommandRunner(
            self.outbox,
            {
                "ping": ping_action(self.started),
                "diagnostics": diagnostics_action(self._diagnostic_sections()),
                "watchlist-resync": self._resync,
                "config-reload": self._config_reload,
                "agent-restart": self._agent_restart,
                "decommission": self._decommission,
            },
            self.clock,
            after_answer={
                "agent-restart": self._restart,
                "config-reload": self._reload_after,
                "decommission": self._decommission_after,
            },
        )
        self._reload_pending = False
        # Everything long-lived is allocated now: keep it out of the collector's generations,
        # so a full collection during a traveller's decision walks only what that decision made.
        gc.collect()
        gc.freeze()

    def close(self) -> None:
        self._close_parts()
        if self._decommissioned:
            for path in self._erasable():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _close_parts(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.outbox is not None:
            self.outbox.close()

    def request_stop(self, outcome: Outcome = "stop") -> None:
        """Stop every part cleanly (publishing ``offline``) and return *outcome* from run()."""
        self._outcome = outcome
        self._stop.set()

    async def run(self) -> Outcome:
        """Run until SIGTERM/SIGINT or :meth:`request_stop`; return whether to restart."""
        if self.lane is None:
            self.open()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        self._add_parts()
        supervisor = asyncio.create_task(self.supervisor.run(), name="supervisor")
        watchdog = asyncio.create_task(self.notifier.watchdog(self._lane_alive), name="watchdog")
        self.notifier.notify(READY=1, STATUS=f"serving lane {self.config.lane.lane}")
        log.info(
            "agent %s started: device %s, lane %s (%s)",
            self.agent_version,
            self.config.agent.device_id,
            self.config.lane.lane,
            self.config.lane.direction,
        )
        try:
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait({supervisor, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.notifier.notify(STOPPING=1, STATUS="stopping")
            for task in (supervisor, watchdog):
                task.cancel()
            await asyncio.gather(supervisor, watchdog, return_exceptions=True)
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            if self.sync is not None:
                await self.sync.close()
            self.close()
            log.info("agent stopped (%s)", self._outcome)
        return self._outcome

    def _lane_alive(self) -> bool:
        part = self.supervisor.part("lane")
        return part.state == "ok"

    # -- parts --------------------------------------------------------------------------------

    def _add_parts(self) -> None:
        config, supervisor = self.config, self.supervisor
        supervisor.add("lane", self._lane_part)
        if config.card_reader is not None:
            supervisor.add("card-reader", self._card_reader_part, status=self._card_status)
        else:
            supervisor.absent("card-reader", "no card reader in this kiosk's configuration")
        if config.mrz_reader is not None:
            supervisor.add("mrz-reader", self._mrz_reader_part, status=self._mrz_status)
        else:
            supervisor.absent("mrz-reader", "no MRZ reader in this kiosk's configuration")
        if config.camera is not None:
            supervisor.add("camera", self._camera_part, status=self._camera_status)
        else:
            supervisor.absent("camera", "no camera in this kiosk's configuration")
        supervisor.add("uplink", self._uplink_part, status=self._uplink_status)
        supervisor.add("health", self._health_part)
        supervisor.add(
            "certificate",
            lambda part: self.certificates.run(part.ready),
            status=self.certificates.component,
        )
        if config.ui.enabled:
            supervisor.add("ui", self._ui_part, status=lambda: self.pages.component())
        else:
            supervisor.absent("ui", "kiosk pages disabled in the configuration")

    async def _lane_part(self, part: Part) -> None:
        assert self.lane is not None
        runner = asyncio.create_task(self.lane.run(), name="lane")
        retention_s = self.lane.reviews.retention_s
        housekeeping_s = min(HOUSEKEEPING_S, max(1.0, retention_s / 10))
        part.ready()
        try:
            while True:
                done, _ = await asyncio.wait({runner}, timeout=housekeeping_s)
                if done:
                    runner.result()  # raises what stopped the lane
                    return
                purged = await asyncio.to_thread(self.lane.reviews.purge)
                if purged:
                    log.info("review queue: personal data of %d expired items removed", purged)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _card_reader_part(self, part: Part) -> None:
        assert self.lane is not None and self.config.card_reader is not None
        async with CardReader(self.config.card_reader) as reader:
            self.card_reader = reader
            part.ready()
            try:
                await self.lane.feed_cards(reader)
            finally:
                self.card_reader = None

    def _card_status(self) -> dict[str, Any]:
        reader = self.card_reader
        if reader is None:
            return component_entry("starting", datetime.now(UTC))
        snapshot = reader.reader_state()
        watcher = snapshot.watcher
        present = [r for r in snapshot.readers.values() if r.present]
        if watcher.state != "running":
            state, detail, since = "down", watcher.detail or watcher.state, watcher.since
        elif not present:
            state, detail, since = "down", "no card reader connected", watcher.since
        elif any(r.stuck for r in present):
            stuck = next(r for r in present if r.stuck)
            state, detail, since = "degraded", f"{stuck.name}: stuck in an exchange", stuck.since
        else:
            errors = [r.last_error for r in present if r.last_error]
            state, since = "ok", max(r.since for r in present)
            detail = f"last error: {errors[-1]}" if errors else ""
        return component_entry(state, datetime.fromtimestamp(since, UTC), detail)

    async def _mrz_reader_part(self, part: Part) -> None:
        assert self.lane is not None and self.config.mrz_reader is not None
        async with MrzReader(self.config.mrz_reader) as reader:
            self.mrz_reader = reader
            part.ready()
            try:
                await self.lane.feed_mrz(reader)
            finally:
                self.mrz_reader = None

    def _mrz_status(self) -> dict[str, Any]:
        reader = self.mrz_reader
        if reader is None:
            return component_entry("starting", datetime.now(UTC))
        state = reader.state
        if state.status == "connected":
            return component_entry("ok", state.since)
        detail = f"{state.status}: {state.last_error or 'looking for the port'}"
        return component_entry("down", state.since, detail)

    async def _camera_part(self, part: Part) -> None:
        assert self.config.camera is not None
        # The camera reopens itself when lost: this part fails only on a bug, not an unplug.
        async with open_camera(self.config.camera) as camera:
            self.camera = camera
            part.ready()
            try:
                await asyncio.Event().wait()
            finally:
                self.camera = None

    def _camera_status(self) -> dict[str, Any]:
        camera = self.camera
        if camera is None:
            return component_entry("starting", datetime.now(UTC))
        state = camera.state
        return component_entry(CAMERA_HEALTH[state.status], state.since, state.detail)

    async def _uplink_part(self, part: Part) -> None:
        assert self.outbox is not None and self.sync is not None and self.commands is not None
        async with Uplink(self.config.uplink, self.outbox, self.clock) as uplink:
            self.sync.attach(UplinkTransport(uplink))  # screening is given a transport
            self.commands.attach(uplink)
            self.uplink = uplink
            part.ready()
            runner = asyncio.create_task(uplink.run(), name="uplink-run")
            answers = asyncio.create_task(self.commands.run(), name="command-answers")
            try:
                # shielded: stopping the agent must let the session say offline (shutdown)
                # before it disconnects, not cut it off mid-publication
                await asyncio.shield(runner)
            finally:
                self.uplink = None
                answers.cancel()  # and the commands still running with it
                await asyncio.gather(answers, return_exceptions=True)
                await uplink.stop()

    def _uplink_status(self) -> dict[str, Any]:
        uplink = self.uplink
        if uplink is None:
            return component_entry("starting", datetime.now(UTC))
        return uplink.status().component()

    async def _health_part(self, part: Part) -> None:
        part.ready()
        await run_heartbeat(self._publish_health, self.health, self.config.health.interval_s)

    async def _publish_health(self, body: dict[str, Any]) -> None:
        uplink = self.uplink
        if uplink is None:
            raise NotConnected("the uplink is restarting")
        await uplink.publish_now("health", body)

    def health(self) -> dict[str, Any]:
        """The current ``health@1`` body (without envelope)."""
        assert self.outbox is not None and self.sync is not None
        if self.uplink is not None:
            uplink_fields = self.uplink.status().health_fields()
        else:
            uplink_fields = {"session": 0, "outbox": self.outbox.stats().to_health()}
            uplink_fields["last_ack"] = None
        components = self.supervisor.components()
        refused = self.outbox.refusal()
        if refused is not None and components["lane"]["state"] == "ok":
            # the lane serves, but every traveller goes to an officer: say why, plainly
            components["lane"] = component_entry("degraded", datetime.now(UTC), REFUSED[refused])
        components["watchlist"] = self.sync.component()
        if self._preflight is not None:  # what the start-up check warned about
            components["preflight"] = self._preflight
        return heartbeat(
            agent_version=self.agent_version,
            started=self.started,
            data_dir=self.config.agent.data_dir,
            uplink_fields=uplink_fields,
            components=components,
            watchlist=self.sync.health(),
        )

    async def _ui_part(self, part: Part) -> None:
        from edge.ui import KioskPages  # aiohttp is imported only by kiosks that serve pages

        assert self.lane is not None
        ui = self.config.ui
        pages = KioskPages(
            self.lane,
            host=ui.host,
            port=ui.port,
            officers=self.officers,
            language=ui.language,
            logins_file=self.config.agent.data_dir / "officer-logins.json",
            hosts=ui.hosts,
        )
        async with pages:
            self.pages = pages
            log.info("kiosk pages on %s", pages.url)
            part.ready()
            await asyncio.Event().wait()

    # -- commands -----------------------------------------------------------------------------

    async def _resync(self, args: Any) -> dict[str, Any]:
        assert self.sync is not None
        try:
            return dict(await self.sync.resync())
        except Offline as exc:  # the connection dropped since the command came: say so plainly
            raise CommandError(
                "failed", f"the snapshot request was not sent ({exc}); send the command again"
            ) from None

    def _diagnostic_sections(self) -> dict[str, Callable[[Any], Any]]:
        """What ``diagnostics`` reports, by section: states and counters, no personal data."""
        return {
            "agent": lambda args: {
                "version": self.agent_version,
                "python": sys.version.split()[0],
                "pid": os.getpid(),
                "uptime_s": round(time.monotonic() - self.started, 1),
                "config": str(self.config.path),
            },
            "parts": lambda args: self.supervisor.summary(),
            "system": lambda args: system_figures(self.config.agent.data_dir),
            "outbox": lambda args: asdict(self.outbox.stats()) if self.outbox else None,
            "uplink": lambda args: _uplink_summary(self.uplink),
            "watchlist": lambda args: (
                {**self.sync.health(), **self.sync.component()} if self.sync else None
            ),
            "card_reader": lambda args: (
                self.card_reader.reader_state().as_dict() if self.card_reader else None
            ),
            "mrz_reader": lambda args: self.mrz_reader.state.to_dict() if self.mrz_reader else None,
            "camera": lambda args: self.camera.state.to_dict() if self.camera else None,
            "lane": lambda args: (
                {
                    "state": self.lane.state.value,
                    "review_queue": len(self.lane.reviews.pending()),
                    **(self.lane.reviews.state(self.config.lane.lane) or {}),
                }
                if self.lane
                else None
            ),
        }

    async def _config_reload(self, args: Any) -> dict[str, Any]:
        try:
            fresh = load_config(self.config.path, agent_version=self.agent_version)
        except AgentConfigError as exc:
            raise CommandError("bad-config", f"the configuration was not reloaded: {exc}") from None
        changed = [name for name in SECTIONS if getattr(fresh, name) != getattr(self.config, name)]
        self._reload_pending = bool(changed)
        return {"changed": changed, "restarting": bool(changed)}

    # -- decommissioning ----------------------------------------------------------------------

    def _erasable(self) -> list[Path]:
        """What decommissioning deletes: every file of personal data and the kiosk's key."""
        config = self.config
        found = [config.agent.kiosk_db, config.watchlist.db]
        found += [p.with_name(p.name + suffix) for p in found for suffix in ("-wal", "-shm")]
        found += [config.uplink.broker.key_file]
        if config.ui.officers is not None:
            found.append(config.ui.officers)
        return found

    async def _decommission(self, args: Any) -> dict[str, Any]:
        wait_s = args.get("wait_s", DECOMMISSION_WAIT_S) if isinstance(args, dict) else None
        if (
            not isinstance(wait_s, (int, float))
            or isinstance(wait_s, bool)
            or not 0 <= wait_s <= 86400
        ):
            raise CommandError("bad-args", "wait_s: seconds to wait for the outbox, 0-86400")
        assert self.outbox is not None
        self._decommission_wait = float(wait_s)
        return {
            "outbox_depth": self.outbox.stats().depth,
            "wait_s": wait_s,
            "erasing": [path.name for path in self._erasable()],
        }

    async def _decommission_after(self) -> None:
        """Once every record is acked: erase the review queue, then stop; the last message
        (availability offline, reason ``decommissioned``) says so, and :meth:`close` deletes the
        databases and the key. Records still unacked after the wait: nothing is erased."""
        assert self.outbox is not None and self.lane is not None
        deadline = time.monotonic() + self._decommission_wait
        while self.outbox.stats().depth and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        depth = self.outbox.stats().depth
        if depth:
            log.error("decommission: %d records still unacked; nothing erased", depth)
            return
        erased = self.lane.reviews.erase()
        self.config.agent.data_dir.joinpath(DECOMMISSIONED).write_text(
            f"{format_time(datetime.now(UTC))}, {erased} review items erased\n"
        )
        self._decommissioned = True
        if self.uplink is not None:
            self.uplink.goodbye_reason = "decommissioned"
        log.warning("decommissioned: review queue erased; stopping and deleting the rest")
        self.request_stop("stop")

    async def _agent_restart(self, args: Any) -> dict[str, Any]:
        return {"restarting_in_s": RESTART_DELAY_S}

    async def _reload_after(self) -> None:
        if self._reload_pending:
            await self._restart()

    async def _restart(self) -> None:
        await asyncio.sleep(RESTART_DELAY_S)
        self.request_stop("restart")


def _uplink_summary(uplink: Uplink | None) -> dict[str, Any]:
    if uplink is None:
        return {"state": "restarting"}
    status = uplink.status()
    return {
        "state": status.state.value,
        "since": format_time(status.since),
        "last_error": status.last_error,
        "session": status.session,
        "in_flight": status.in_flight,
        "connects": status.connects,
        "rejected": status.rejected,
        "last_ack": format_time(status.last_ack) if status.last_ack else None,
    }

"""Commands from the console: run each command id at most once, answer every one of them.

The console publishes ``command@1`` on the kiosk's ``commands`` channel; the uplink validates it
and hands it to :meth:`CommandRunner.handle`, which answers with exactly one
``command-result@1``: status ``ok`` with the action's result, or status ``error`` with a code
from the contract::

    runner = CommandRunner(outbox, {
        "ping": ping_action(),
        "diagnostics": diagnostics_action({"outbox": outbox_stats, "readers": reader_states}),
        "watchlist-resync": resync,            # async (args) -> result mapping
        "config-reload": reload_config,
        "agent-restart": answer_restart,       # answers {"restarting_in_s": 1}
    }, clock, after_answer={"agent-restart": restart_agent})
    runner.attach(uplink)
    tasks.append(asyncio.create_task(runner.run()))   # resends answers the network missed

Error codes
    ``unknown-command`` (no action of that name), ``bad-args`` (the action raised
    :class:`TypeError` or :class:`ValueError`: the arguments do not fit it), ``expired`` (its
    ``expires_at`` has passed by a synced clock), ``failed`` (any other exception; the log has
    the traceback, the console gets the exception's type only, never its text, which may hold
    personal data), or an action's own code through :class:`CommandError`.

At most once
    The kiosk database (the outbox's SQLite file) keeps one row per command id in
    ``agent_commands``. The row is committed *before* the action runs, so a redelivered command
    (QoS 1 redelivers; the console may resend) gets the stored answer again instead of a second
    run, also after the agent restarted. A row still ``running`` when the agent starts belongs
    to an agent that stopped mid-action: it is answered ``failed`` (interrupted), never re-run.
    Rows are pruned after ``retention_s`` (7 days: longer than the broker keeps a session's
    queue, so a redelivery always finds its row) and beyond ``max_rows``. Their age is the
    kiosk database's lifetime (:meth:`~edge.uplink.Outbox.lifetime_ms`), not the wall clock:
    a clock that jumps a year ahead must not forget every id at once (a redelivered
    agent-restart would run twice), nor one set back keep rows beyond ``max_rows``' bound.
    Time switched off does not count: a row outlives the broker's queue all the more.

Offline
    A result is stored before it is sent. When :meth:`Uplink.publish_now` raises
    :class:`NotConnected` it stays marked unsent, and :meth:`CommandRunner.run` (and the next
    command delivered) sends it once the uplink is connected again. Results are not outbox
    records: the console does not ack them, and a duplicate answer costs it nothing (it stores
    results by payload id and reads them by command id).

Side by side
    Each delivered command runs in a task of its own (at most ``max_running`` actions at once,
    the rest wait their turn), so a ping is answered while a diagnostics report is still being
    gathered. The same id delivered again while its first delivery runs is answered ``busy``;
    its real answer follows. Stopping :meth:`CommandRunner.run` cancels what still runs (those
    ids are answered ``failed``, interrupted, at the next start).

After the answer
    ``after_answer[name]`` runs once the result of a successful *name* was handed to the broker
    (``publish_now`` returned): an ``agent-restart`` answers first, then restarts. It runs in
    the process that ran the action, after the first successful send; a restart still pending
    when the agent stops has, by then, happened anyway.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edge.uplink import (
    Clock,
    Incoming,
    NotConnected,
    Outbox,
    OutboxError,
    Uplink,
    canonical_json,
    uuid7,
)
from mqtt_schemas import PayloadError, validate
from mqtt_schemas.envelope import format_time

__all__ = [
    "Action",
    "AfterAnswer",
    "CommandError",
    "CommandRunner",
    "Section",
    "diagnostics_action",
    "ping_action",
]

log = logging.getLogger("edge.agent.commands")

Action = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
"""A command's implementation: its ``args`` in, the ``result`` object out."""
AfterAnswer = Callable[[], Awaitable[None]]
Section = Callable[[Mapping[str, Any]], Any]
"""One diagnostics section: gets the command's args, returns JSON-able data (or awaitable)."""

RESULT_MAX_KEYS = 64
"""The contract's bound on the keys of a result object."""
RESULT_MAX_BYTES = 1024 * 1024
"""Largest answer sent: well under the broker's 4 MiB packet limit, kind to a slow uplink."""
MESSAGE_MAX = 1000
"""The contract's bound on an error message."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS agent_commands (
        command_id TEXT PRIMARY KEY,   -- the command payload's id
        name TEXT NOT NULL,
        state TEXT NOT NULL,           -- running, done
        answer TEXT,                   -- JSON: the command-result body (no envelope), once done
        received_ms INTEGER NOT NULL,  -- wall clock, for people reading the table
        sent_ms INTEGER,               -- when the answer last reached the broker, NULL: to send
        received_life_ms INTEGER       -- the kiosk database's lifetime at receipt, for pruning
    )""",
    "CREATE INDEX IF NOT EXISTS agent_commands_unsent ON agent_commands (received_ms) "
    "WHERE sent_ms IS NULL AND state = 'done'",
    "CREATE INDEX IF NOT EXISTS agent_commands_received ON agent_commands (received_ms)",
)


class CommandError(Exception):
    """Raised by an action to answer status error with its own *code* (a contract name).

    *message* is for the operator at the console: say what to do, and never include personal
    data (it travels to the console and its database).
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class CommandRunner:
    """Runs the console's commands on this kiosk; see the module documentation."""

    def __init__(
        self,
        outbox: Outbox,
        actions: Mapping[str, Action],
        clock: Clock,
        *,
        after_answer: Mapping[str, AfterAnswer] | None = None,
        action_timeout_s: float = 60.0,
        retry_s: float = 5.0,
        retention_s: float = 7 * 86400,
        max_rows: int = 10_000,
        max_running: int = 4,
    ) -> None:
        self.outbox = outbox
        self.actions = dict(actions)
        self.clock = clock
        self.after_answer = dict(after_answer or {})
        self.action_timeout_s = action_timeout_s
        self.retry_s = retry_s
        self.retention_s = retention_s
        self.max_rows = max_rows
        self._uplink: Uplink | None = None
        self._after: dict[str, str] = {}  # command id -> name, hooks due after its first send
        self._resend_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_running)
        self._tasks: set[asyncio.Task[None]] = set()
        with outbox.transaction() as tx:
            for statement in _SCHEMA:
                tx.execute(statement)
            columns = {row[1] for row in tx.execute("PRAGMA table_info(agent_commands)")}
            if "received_life_ms" not in columns:  # a kiosk database from before the lifetime
                tx.execute("ALTER TABLE agent_commands ADD COLUMN received_life_ms INTEGER")
                tx.execute("UPDATE agent_commands SET received_life_ms = ?", (tx.lifetime_ms(),))
            interrupted = tx.execute(
                "SELECT command_id, name FROM agent_commands WHERE state = 'running'"
            ).fetchall()
            for command_id, name in interrupted:
                answer = _error(
                    command_id,
                    "failed",
                    f"{name} was interrupted: the agent stopped before it finished; "
                    "send the command again (with a new id) if it is still wanted",
                )
                tx.execute(
                    "UPDATE agent_commands SET state = 'done', answer = ? WHERE command_id = ?",
                    (json.dumps(answer), command_id),
                )
        for command_id, name in interrupted:
            log.warning("command %s (%s) was interrupted by an agent stop", command_id, name)

    # -- wiring -------------------------------------------------------------------------------

    def attach(self, uplink: Uplink) -> None:
        """Receive the uplink's commands and send the answers through it."""
        self._uplink = uplink
        uplink.on("commands", self._start)

    async def run(self) -> None:
        """Send stored answers the network missed, whenever connected; runs until cancelled,
        then cancels the commands still running."""
        uplink = self._require_uplink()
        try:
            while True:
                await uplink.wait_connected()
                await self.resend_pending()
                await asyncio.sleep(self.retry_s)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _start(self, incoming: Incoming) -> None:
        """The uplink's handler: hand the command to a task of its own and take the next."""
        task = asyncio.create_task(self.handle(incoming), name=f"command-{incoming.payload['id']}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("command task %s failed", task.get_name(), exc_info=task.exception())

    # -- handling -----------------------------------------------------------------------------

    async def handle(self, incoming: Incoming) -> None:
        """Answer one command (valid to the schema: the uplink dropped any other)."""
        command = incoming.payload
        command_id, name = command["id"], command["name"]
        # A delivery proves the connection: first send what earlier deliveries could not.
        await self.resend_pending()
        stored = await asyncio.to_thread(self._claim, command_id, name)
        if stored is not None:
            log.info("command %s (%s) delivered again: answering as before", command_id, name)
            async with self._resend_lock:
                await self._send(command_id, stored)
            return
        async with self._slots:
            answer = await self._run(command)
        status = answer["status"]
        code = f" {answer['error']['code']}" if status == "error" else ""
        log.info("command %s (%s): %s%s", command_id, name, status, code)
        if status == "ok" and name in self.after_answer:
            self._after[command_id] = name
        # Stored and sent under the lock: the resend loop must not send it a second time.
        async with self._resend_lock:
            await asyncio.to_thread(self._finish, command_id, answer)
            await self._send(command_id, answer)

    async def resend_pending(self) -> int:
        """Send every stored answer not yet sent, oldest first; return how many went out."""
        if self._uplink is None:
            return 0
        async with self._resend_lock:
            rows = await asyncio.to_thread(
                self.outbox.query,
                "SELECT command_id, answer FROM agent_commands "
                "WHERE sent_ms IS NULL AND state = 'done' ORDER BY received_ms",
            )
            sent = 0
            for command_id, answer in rows:
                if not await self._send(command_id, json.loads(answer)):
                    break
                sent += 1
            if sent:
                log.info("sent %d command answers kept while offline", sent)
            return sent

    def unsent(self) -> list[str]:
        """Ids of commands whose answer is stored but has not reached the broker yet."""
        rows = self.outbox.query(
            "SELECT command_id FROM agent_commands WHERE sent_ms IS NULL AND state = 'done' "
            "ORDER BY received_ms"
        )
        return [row[0] for row in rows]

    async def _run(self, command: Mapping[str, Any]) -> dict[str, Any]:
        """The answer body for *command* (never raises, except on cancellation)."""
        command_id, name = command["id"], command["name"]
        action = self.actions.get(name)
        if action is None:
            known = ", ".join(sorted(self.actions)) or "none"
            return _error(
                command_id,
                "unknown-command",
                f"this kiosk has no command {name!r} (it knows: {known})",
            )
        note = None
        expires_at = command.get("expires_at")
        if expires_at is not None:
            reading = self.clock.read()
            if _parse_time(expires_at) <= reading.time:
                if reading.state.synced:
                    return _error(
                        command_id,
                        "expired",
                        f"{name} expired at {expires_at}; the kiosk received it at "
                        f"{format_time(reading.time)} and did not run it",
                    )
                note = (
                    f"ran although expires_at ({expires_at}) has passed by this kiosk's clock, "
                    "which is not synced"
                )
        try:
            async with asyncio.timeout(self.action_timeout_s):
                result = await action(dict(command["args"]))
        except CommandError as exc:
            return _error(command_id, exc.code, exc.message)
        except (TypeError, ValueError) as exc:
            return _error(command_id, "bad-args", f"{name}: {exc or type(exc).__name__}")
        except TimeoutError:
            return _error(
                command_id, "failed", f"{name} did not finish within {self.action_timeout_s:g} s"
            )
        except Exception as exc:
            log.exception("command %s (%s) failed", command_id, name)
            return _error(
                command_id,
                "failed",
                f"{name} failed with {type(exc).__name__}; the kiosk's log has the details",
            )
        return _ok(command_id, name, result, note)

    # -- storage ------------------------------------------------------------------------------

    def _claim(self, command_id: str, name: str) -> dict[str, Any] | None:
        """Record that *command_id* runs now; or return its stored answer if it ran before."""
        now_ms = _now_ms(self.clock)
        with self.outbox.transaction() as tx:
            row = tx.execute(
                "SELECT state, answer FROM agent_commands WHERE command_id = ?", (command_id,)
            ).fetchone()
            if row is not None:
                state, answer = row
                if state == "done":
                    return json.loads(answer)
                # Its first delivery is still running (in another task): that answer follows.
                return _error(command_id, "busy", f"{name} is still running; its answer follows")
            tx.execute(
                "INSERT INTO agent_commands (command_id, name, state, received_ms, "
                "received_life_ms) VALUES (?, ?, 'running', ?, ?)",
                (command_id, name, now_ms, tx.lifetime_ms()),
            )
            self._prune(tx)
        return None

    def _finish(self, command_id: str, answer: dict[str, Any]) -> None:
        with self.outbox.transaction() as tx:
            tx.execute(
                "UPDATE agent_commands SET state = 'done', answer = ? WHERE command_id = ?",
                (json.dumps(answer, ensure_ascii=False), command_id),
            )

    def _mark_sent(self, command_id: str) -> None:
        with self.outbox.transaction() as tx:
            tx.execute(
                "UPDATE agent_commands SET sent_ms = ? WHERE command_id = ?",
                (_now_ms(self.clock), command_id),
            )

    def _prune(self, tx: Any) -> None:
        tx.execute(
            "DELETE FROM agent_commands WHERE state = 'done' AND received_life_ms < ?",
            (tx.lifetime_ms() - int(self.retention_s * 1000),),
        )
        tx.execute(  # rowid: the order of receipt, whatever the clock said
            "DELETE FROM agent_commands WHERE state = 'done' AND command_id NOT IN "
            "(SELECT command_id FROM agent_commands ORDER BY rowid DESC LIMIT ?)",
            (self.max_rows,),
        )

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, command_id: str, answer: dict[str, Any]) -> bool:
        """Publish *answer*; mark it sent and run a due after-answer hook. False if offline.

        Called under ``_resend_lock`` only, so the resend loop and a new answer never send the
        same answer twice at once.
        """
        uplink = self._require_uplink()
        try:
            await uplink.publish_now("command-results", answer)
        except NotConnected as exc:
            log.info("answer to command %s kept until connected: %s", command_id, exc)
            return False
        except PayloadError as exc:  # a bug: _ok checked the body; never loop on it
            log.error("answer to command %s is not valid (%s); dropped", command_id, exc.path)
            answer = _error(command_id, "failed", "the kiosk made an invalid answer (a bug)")
            return await self._send(command_id, answer)
        await asyncio.to_thread(self._mark_sent, command_id)
        name = self._after.pop(command_id, None)
        if name is not None:
            try:
                await self.after_answer[name]()
            except Exception:
                log.exception("after-answer step of %s (command %s) failed", name, command_id)
        return True

    def _require_uplink(self) -> Uplink:
        if self._uplink is None:
            raise RuntimeError("CommandRunner.attach(uplink) first")
        return self._uplink


# -- answers ------------------------------------------------------------------------------------


def _error(command_id: str, code: str, message: str) -> dict[str, Any]:
    message = message.strip() or code
    if len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 1] + "…"
    return {
        "command_id": command_id,
        "status": "error",
        "error": {"code": code, "message": message},
    }


def _ok(command_id: str, name: str, result: Any, note: str | None) -> dict[str, Any]:
    """The ok answer, or a ``failed`` one when the action's result cannot be sent as it is."""
    if not isinstance(result, Mapping):
        return _error(
            command_id,
            "failed",
            f"{name} returned {type(result).__name__}, not an object (a bug in the kiosk agent)",
        )
    result = dict(result)
    if note is not None:
        result["clock_note"] = note
    answer = {"command_id": command_id, "status": "ok", "result": result}
    try:
        size = len(canonical_json(answer))
    except Exception:  # canonical_json names the problem; the value itself is not logged
        log.exception("the result of %s is not JSON", name)
        return _error(command_id, "failed", f"{name} made a result that is not JSON (a bug)")
    if size > RESULT_MAX_BYTES:
        return _error(
            command_id, "failed", f"{name} made a {size}-byte result (limit {RESULT_MAX_BYTES})"
        )
    try:
        validate("command-result", {**_PLACEHOLDER_ENVELOPE, "id": str(uuid7()), **answer})
    except PayloadError as exc:
        return _error(
            command_id, "failed", f"{name} made a result the contract refuses at {exc.path or '/'}"
        )
    return answer


_PLACEHOLDER_ENVELOPE = {
    "schema": "command-result@1",
    "device_id": "placeholder",
    "seq": 0,
    "time": "2000-01-01T00:00:00Z",
    "clock": {"synced": False, "source": "none"},
}
"""Only to check an answer's own fields before storing it; the uplink stamps the real one."""


def _parse_time(text: str) -> dt.datetime:
    """A contract timestamp (``...Z``, up to 9 fractional digits) as an aware datetime."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    moment = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
    if fraction:
        moment += dt.timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    return moment


def _now_ms(clock: Clock) -> int:
    return int(clock.read().time.timestamp() * 1000)


# -- built-in actions ---------------------------------------------------------------------------


def ping_action(started_monotonic: float | None = None) -> Action:
    """``ping``: answers at once with ``pong`` and the agent's uptime; proves the round trip.

    *started_monotonic* is the agent's start (``time.monotonic()``); default: now.
    """
    started = time.monotonic() if started_monotonic is None else started_monotonic

    async def ping(args: Mapping[str, Any]) -> Mapping[str, Any]:
        _no_args("ping", args)
        return {"pong": True, "uptime_s": round(time.monotonic() - started, 3)}

    return ping


def diagnostics_action(
    sections: Mapping[str, Section],
    *,
    max_section_bytes: int = 16 * 1024,
    max_total_bytes: int = 256 * 1024,
) -> Action:
    """``diagnostics``: a bounded summary, one key per section (``args.sections`` picks some).

    Each section is a callable (sync or async) given the command's args, so a ``logs`` section
    can read ``log_lines``. A section bigger than *max_section_bytes* as JSON is cut to
    ``{"truncated": true, "bytes": N, "head": "<its first bytes>"}``; a section that raises
    becomes ``{"error": "<exception type>"}`` (its text is logged, not sent); sections past
    *max_total_bytes* are listed under ``omitted``. At most 60 sections, so the result stays
    within the contract's 64 keys. Sections must never hold personal data.
    """
    if len(sections) > RESULT_MAX_KEYS - 4:
        raise ValueError(f"at most {RESULT_MAX_KEYS - 4} diagnostics sections")

    async def diagnostics(args: Mapping[str, Any]) -> Mapping[str, Any]:
        wanted = args.get("sections")
        if wanted is None:
            names = list(sections)
        else:
            if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
                raise ValueError("sections must be a list of section names")
            unknown = [n for n in wanted if n not in sections]
            if unknown:
                raise ValueError(
                    f"no section {', '.join(map(repr, unknown))} (sections: {', '.join(sections)})"
                )
            names = list(dict.fromkeys(wanted))
        result: dict[str, Any] = {}
        omitted: list[str] = []
        total = 0
        for name in names:
            value = await _section(name, sections[name], args, max_section_bytes)
            size = len(canonical_json({name: value}))
            if total + size > max_total_bytes:
                omitted.append(name)
                continue
            total += size
            result[name] = value
        if omitted:
            result["omitted"] = omitted
        return result

    return diagnostics


async def _section(name: str, source: Section, args: Mapping[str, Any], limit: int) -> Any:
    try:
        value = source(args)
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        log.exception("diagnostics section %s failed", name)
        return {"error": type(exc).__name__}
    try:
        data = canonical_json({"v": value})[5:-1]
    except OutboxError:
        log.error("diagnostics section %s is not JSON (a %s)", name, type(value).__name__)
        return {"error": f"not JSON: {type(value).__name__}"}
    if len(data) <= limit:
        return value
    head = data[:limit].decode("utf-8", errors="ignore")
    return {"truncated": True, "bytes": len(data), "head": head}


def _no_args(name: str, args: Mapping[str, Any]) -> None:
    if args:
        raise ValueError(f"{name} takes no arguments (got {', '.join(sorted(args))})")

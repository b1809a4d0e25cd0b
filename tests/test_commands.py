"""Commands from the console to a kiosk, on a real Mosquitto (TLS client certificates, the
contract ACL): the console's API and CLI on one side, a real Uplink with a real Outbox and the
CommandRunner on the other.

Every command gets exactly one kind of answer; a command id runs at most once; an answer made
while the kiosk is offline reaches the console after it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from console.commands import CommandSettings, NoAnswer, build_command, send_command
from edge.agent.commands import CommandError, CommandRunner, diagnostics_action, ping_action
from edge.uplink import (
    ClockReading,
    ClockState,
    ConnectionState,
    Outbox,
    StaticClock,
    Uplink,
)
from harness.console import rows, running_worker
from mqtt_schemas import PayloadError, topics, validate
from provisioning.broker import free_port

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio]
CLOCK = StaticClock()
CONSOLE_CLI = Path(sys.executable).parent / "borderlane-console"


@dataclass
class Kiosk:
    uplink: Uplink
    runner: CommandRunner
    outbox: Outbox


@contextlib.asynccontextmanager
async def kiosk(
    broker: Any,
    tmp_path: Path,
    actions: Mapping[str, Any],
    *,
    device_id: str = "kiosk-a",
    clock: Any = CLOCK,
    **runner_options: Any,
) -> AsyncIterator[Kiosk]:
    """A kiosk whose uplink and command runner serve the body of the block."""
    config = broker.uplink_config(device_id, publish_timeout_s=2)
    outbox = Outbox(tmp_path / f"{device_id}.db", device_id, CLOCK, config.outbox)
    runner_options.setdefault("retry_s", 0.1)
    runner = CommandRunner(outbox, actions, clock, **runner_options)
    try:
        async with Uplink(config, outbox, CLOCK) as uplink:
            runner.attach(uplink)
            uplink_task = asyncio.create_task(uplink.run())
            resender = asyncio.create_task(runner.run())
            try:
                await uplink.wait_connected(10)
                yield Kiosk(uplink, runner, outbox)
            finally:
                resender.cancel()
                await asyncio.gather(resender, return_exceptions=True)
                await uplink.stop()
                await uplink_task
    finally:
        outbox.close()


def console_settings(broker: Any) -> CommandSettings:
    return CommandSettings(broker.console_endpoint(), node_id="console-commands")


class AnswerLog:
    """A console client watching one kiosk's command-results (and publishing raw commands)."""

    def __init__(self, broker: Any, device_id: str, session: str | None = None) -> None:
        """*session*: a client id whose broker session (and subscription) outlives the
        connection, also an orderly broker restart; a second AnswerLog with it resumes it."""
        self.device_id = device_id
        options: dict[str, Any] = {}
        if session is not None:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 300
            options = {"identifier": session, "clean_start": False, "properties": properties}
        self.client = broker.client("console", **options)
        self.answers: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AnswerLog:
        await self.client.__aenter__()
        await self.client.subscribe(topics.device_topic(self.device_id, "command-results"), qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):  # the broker may have gone meanwhile
            await self.client.__aexit__(*exc_info)

    async def _collect(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self.client.messages:
                payload = json.loads(message.payload)
                validate("command-result", payload)
                self.answers.append(payload)
                self._changed.set()

    async def publish(self, command: dict[str, Any]) -> None:
        topic = topics.device_topic(self.device_id, "commands")
        await self.client.publish(topic, json.dumps(command).encode(), qos=1)

    def to(self, command_id: str) -> list[dict[str, Any]]:
        return [a for a in self.answers if a["command_id"] == command_id]

    async def wait_for(self, command_id: str, count: int = 1, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while len(self.to(command_id)) < count:
                self._changed.clear()
                await self._changed.wait()


class ShiftedClock:
    """The kiosk's clock, *ahead* of real time, synced or not (expiry is judged by it)."""

    def __init__(self, ahead: dt.timedelta, synced: bool) -> None:
        self.ahead = ahead
        self.state = ClockState(synced, "ntp" if synced else "none")

    def read(self) -> ClockReading:
        return ClockReading(dt.datetime.now(dt.UTC) + self.ahead, self.state)


async def until(condition, timeout: float = 10, step: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)


async def echo(args: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"echo": dict(args)}


# -- the round trip -----------------------------------------------------------------------------


async def test_ping_round_trip_through_the_api(uplink_broker, tmp_path, console_db):
    db = console_db
    async with (
        running_worker(uplink_broker, db),
        kiosk(uplink_broker, tmp_path, {"ping": ping_action()}),
    ):
        answer = await send_command(console_settings(uplink_broker), "kiosk-a", "ping", {})
        # The console's ingest stores the answer too, through its own shared subscription.
        stored = await wait_rows(db, answer["command_id"])

    validate("command-result", answer)
    assert answer["status"] == "ok"
    assert answer["device_id"] == "kiosk-a"
    assert answer["result"]["pong"] is True
    assert answer["result"]["uptime_s"] >= 0
    assert [(r["id"], r["status"]) for r in stored] == [(answer["id"], "ok")]


async def test_the_command_carries_a_valid_envelope_and_expiry():
    command = build_command("console-commands", "agent-restart", {}, expires_in_s=300)

    validate("command", command)
    sent = dt.datetime.fromisoformat(command["time"].replace("Z", "+00:00"))
    expires = dt.datetime.fromisoformat(command["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - sent).total_seconds() - 300) < 0.01
    assert build_command("console-commands", "ping")["seq"] > command["seq"]
    with pytest.raises(PayloadError) as bad:
        build_command("console-commands", "ping", {"Not A Name": 1})
    assert bad.value.path.startswith("/args")


async def test_cli_prints_the_result_and_exits_by_status(uplink_broker, tmp_path):
    tls = uplink_broker.console_cli_args()

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            CONSOLE_CLI,
            "command",
            "send",
            *tls,
            *args,  # last: an option given here wins
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    async with kiosk(uplink_broker, tmp_path, {"ping": ping_action(), "echo": echo}):
        code, out, err = await cli("--device", "kiosk-a", "ping")
        assert (code, err) == (0, "")
        assert json.loads(out)["pong"] is True

        code, out, _ = await cli(
            "--device", "kiosk-a", "echo", "--arg", "log_lines=200", "--arg", 'sections=["a"]',
            "--arg", "channel=stable", "--expires", "5m",
        )  # fmt: skip
        assert code == 0
        assert json.loads(out) == {
            "echo": {"log_lines": 200, "sections": ["a"], "channel": "stable"}
        }

        code, out, err = await cli("--device", "kiosk-a", "firmware-update")
        assert (code, out) == (1, "")
        assert err.startswith("unknown-command: this kiosk has no command 'firmware-update'")

    # No broker there: one line, exit 1.
    code, out, err = await cli(
        "--device", "kiosk-a", "ping", "--broker", f"127.0.0.1:{free_port()}", "--wait", "1"
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err.startswith("Error: cannot talk to the broker at 127.0.0.1:")
    assert len(err.strip().splitlines()) == 1

    # Nobody serves kiosk-b: the console gives up after --wait and says so.
    code, out, err = await cli("--device", "kiosk-b", "ping", "--wait", "0.5")
    assert (code, out) == (3, "")
    assert err.startswith("no answer from kiosk-b within 0.5 s")

    for usage in (
        ["--device", "kiosk-a", "ping", "--arg", "no-equals-sign"],
        ["--device", "kiosk-a", "ping", "--expires", "soon"],
        ["--device", "kiosk/a", "ping"],
        ["--device", "kiosk-a", "Not-A-Name"],
    ):
        code, out, err = await cli(*usage)
        assert code == 2, usage
        assert "Traceback" not in err
        assert err.strip().splitlines()[-1].startswith("Error: ")


# -- errors -------------------------------------------------------------------------------------


async def test_unknown_command_is_answered_with_unknown_command(uplink_broker, tmp_path):
    async with kiosk(uplink_broker, tmp_path, {"ping": ping_action()}):
        answer = await send_command(console_settings(uplink_broker), "kiosk-a", "self-destruct")

    assert answer["status"] == "error"
    assert "result" not in answer
    assert answer["error"]["code"] == "unknown-command"
    assert "self-destruct" in answer["error"]["message"]
    assert "ping" in answer["error"]["message"]  # what it does know


async def test_bad_args_are_answered_with_bad_args(uplink_broker, tmp_path):
    actions = {
        "ping": ping_action(),
        "diagnostics": diagnostics_action({"outbox": lambda args: {"depth": 0}}),
    }
    settings = console_settings(uplink_broker)
    async with kiosk(uplink_broker, tmp_path, actions):
        extra = await send_command(settings, "kiosk-a", "ping", {"count": 3})
        unknown = await send_command(settings, "kiosk-a", "diagnostics", {"sections": ["disk"]})
        fine = await send_command(settings, "kiosk-a", "diagnostics", {"sections": ["outbox"]})

    assert extra["error"] == {
        "code": "bad-args",
        "message": "ping: ping takes no arguments (got count)",
    }
    assert unknown["error"]["code"] == "bad-args"
    assert "'disk'" in unknown["error"]["message"] and "outbox" in unknown["error"]["message"]
    assert fine["result"] == {"outbox": {"depth": 0}}


async def test_a_failing_action_answers_failed_and_the_runner_keeps_serving(
    uplink_broker, tmp_path, caplog
):
    async def broken(args: Mapping[str, Any]) -> Mapping[str, Any]:
        raise RuntimeError("cannot read card of L898902C3")  # personal data in the text

    async def refusing(args: Mapping[str, Any]) -> Mapping[str, Any]:
        raise CommandError("busy", "a traveller is at the lane; try again in a minute")

    settings = console_settings(uplink_broker)
    actions = {"ping": ping_action(), "broken": broken, "refusing": refusing}
    async with kiosk(uplink_broker, tmp_path, actions):
        failed = await send_command(settings, "kiosk-a", "broken")
        refused = await send_command(settings, "kiosk-a", "refusing")
        after = await send_command(settings, "kiosk-a", "ping")

    assert failed["error"]["code"] == "failed"
    assert "RuntimeError" in failed["error"]["message"]
    assert "L898902C3" not in failed["error"]["message"]  # never sent to the console
    assert "Traceback" in caplog.text  # the kiosk's log keeps the details
    assert refused["error"] == {
        "code": "busy",
        "message": "a traveller is at the lane; try again in a minute",
    }
    assert after["status"] == "ok"


async def test_a_slow_command_does_not_hold_up_a_ping_behind_it(uplink_broker, tmp_path):
    """A technician pinging a kiosk whose diagnostics report is still being gathered gets the
    pong at once; the report follows when it is ready."""
    release = asyncio.Event()

    async def slow_report(args: Mapping[str, Any]) -> Mapping[str, Any]:
        await release.wait()
        return {"report": "done"}

    slow = build_command("console-commands", "diagnostics", {})
    ping = build_command("console-commands", "ping", {})
    actions = {"ping": ping_action(), "diagnostics": slow_report}
    async with (
        kiosk(uplink_broker, tmp_path, actions),
        AnswerLog(uplink_broker, "kiosk-a") as log,
    ):
        await log.publish(slow)
        await log.publish(ping)
        await log.wait_for(ping["id"])
        assert log.to(slow["id"]) == []  # still running
        await log.publish(slow)  # redelivered meanwhile: not a second run
        await log.wait_for(slow["id"])
        assert log.to(slow["id"])[0]["error"]["code"] == "busy"
        release.set()
        await log.wait_for(slow["id"], count=2)

    assert log.to(ping["id"])[0]["status"] == "ok"
    assert log.to(slow["id"])[1]["result"] == {"report": "done"}


# -- expiry -------------------------------------------------------------------------------------


async def test_expired_commands_do_not_run_by_a_synced_clock(uplink_broker, tmp_path):
    restarts: list[str] = []

    async def answer_restart(args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"restarting_in_s": 0}

    async def restart() -> None:
        restarts.append("restarted")

    # The kiosk's synced clock is an hour ahead: a command valid for a minute reached it late.
    late = ShiftedClock(dt.timedelta(hours=1), synced=True)
    async with kiosk(
        uplink_broker,
        tmp_path,
        {"agent-restart": answer_restart},
        clock=late,
        after_answer={"agent-restart": restart},
    ):
        answer = await send_command(
            console_settings(uplink_broker), "kiosk-a", "agent-restart", expires_in_s=60
        )

    assert answer["error"]["code"] == "expired"
    assert "did not run it" in answer["error"]["message"]
    assert restarts == []


async def test_an_unsynced_clock_runs_expired_commands_and_says_so(uplink_broker, tmp_path):
    runs: list[Mapping[str, Any]] = []

    async def counted(args: Mapping[str, Any]) -> Mapping[str, Any]:
        runs.append(args)
        return {"done": True}

    unsynced = ShiftedClock(dt.timedelta(hours=1), synced=False)
    async with kiosk(uplink_broker, tmp_path, {"resync": counted}, clock=unsynced):
        answer = await send_command(
            console_settings(uplink_broker), "kiosk-a", "resync", expires_in_s=60
        )

    assert len(runs) == 1
    assert answer["status"] == "ok"
    assert answer["result"]["done"] is True
    assert "not synced" in answer["result"]["clock_note"]


# -- at most once -------------------------------------------------------------------------------


async def test_a_redelivered_command_runs_once_and_is_answered_again(uplink_broker, tmp_path):
    runs = 0

    async def counted(args: Mapping[str, Any]) -> Mapping[str, Any]:
        nonlocal runs
        runs += 1
        return {"run": runs}

    command = build_command("console-commands", "watchlist-resync", {})
    async with (
        kiosk(uplink_broker, tmp_path, {"watchlist-resync": counted}),
        AnswerLog(uplink_broker, "kiosk-a") as log,
    ):
        await log.publish(command)
        await log.wait_for(command["id"])
        await log.publish(command)  # the same payload again, as a QoS 1 redelivery would be
        await log.wait_for(command["id"], count=2)

    first, second = log.to(command["id"])
    assert runs == 1
    assert first["result"] == second["result"] == {"run": 1}
    assert first["id"] != second["id"]  # two answers, each its own payload
    assert second["seq"] > first["seq"]


async def test_a_command_id_stays_answered_across_an_agent_restart(uplink_broker, tmp_path):
    runs = 0

    async def counted(args: Mapping[str, Any]) -> Mapping[str, Any]:
        nonlocal runs
        runs += 1
        return {"run": runs}

    command = build_command("console-commands", "config-reload", {})
    async with AnswerLog(uplink_broker, "kiosk-a") as log:
        async with kiosk(uplink_broker, tmp_path, {"config-reload": counted}):
            await log.publish(command)
            await log.wait_for(command["id"])
        async with kiosk(uplink_broker, tmp_path, {"config-reload": counted}):
            await log.publish(command)
            await log.wait_for(command["id"], count=2)

    assert runs == 1
    assert [a["result"] for a in log.to(command["id"])] == [{"run": 1}, {"run": 1}]


async def test_a_command_interrupted_by_an_agent_stop_is_answered_failed_not_rerun(
    uplink_broker, tmp_path
):
    started = asyncio.Event()
    runs = 0

    async def hangs(args: Mapping[str, Any]) -> Mapping[str, Any]:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.Event().wait()
        return {}

    command = build_command("console-commands", "watchlist-resync", {})
    async with AnswerLog(uplink_broker, "kiosk-a") as log:
        async with kiosk(uplink_broker, tmp_path, {"watchlist-resync": hangs}):
            await log.publish(command)
            async with asyncio.timeout(5):
                await started.wait()
        # The agent stopped mid-action (leaving the block cancels it). The next agent answers.
        async with kiosk(uplink_broker, tmp_path, {"watchlist-resync": hangs}):
            await log.wait_for(command["id"])
            await log.publish(command)
            await log.wait_for(command["id"], count=2)

    assert runs == 1
    for answer in log.to(command["id"]):
        assert answer["error"]["code"] == "failed"
        assert "interrupted" in answer["error"]["message"]


async def test_stored_answers_are_pruned_by_count_and_age(uplink_broker, tmp_path):
    settings = console_settings(uplink_broker)
    async with kiosk(uplink_broker, tmp_path, {"ping": ping_action()}, max_rows=3) as k:
        sent = [(await send_command(settings, "kiosk-a", "ping"))["command_id"] for _ in range(6)]
        kept = [row[0] for row in k.outbox.query("SELECT command_id FROM agent_commands")]
    assert sorted(kept) == sorted(sent[-3:])  # uuid7 ids: the newest three

    async with kiosk(
        uplink_broker, tmp_path, {"ping": ping_action()}, device_id="kiosk-b", retention_s=0.2
    ) as k:
        old = (await send_command(settings, "kiosk-b", "ping"))["command_id"]
        await asyncio.sleep(0.3)
        new = (await send_command(settings, "kiosk-b", "ping"))["command_id"]
        kept = [row[0] for row in k.outbox.query("SELECT command_id FROM agent_commands")]
    assert (old in kept, new in kept) == (False, True)


# -- after the answer ---------------------------------------------------------------------------


async def test_agent_restart_restarts_only_after_its_answer_is_out(uplink_broker, tmp_path):
    answer_was_out: list[bool] = []
    runner_ref: list[CommandRunner] = []
    command = build_command("console-commands", "agent-restart", {})

    async def answer_restart(args: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"restarting_in_s": 1}

    async def restart() -> None:
        # What a restart would lose: an answer not yet handed to the broker.
        answer_was_out.append(command["id"] not in runner_ref[0].unsent())

    async with (
        AnswerLog(uplink_broker, "kiosk-a") as log,
        kiosk(
            uplink_broker,
            tmp_path,
            {"agent-restart": answer_restart},
            after_answer={"agent-restart": restart},
            retry_s=30,  # no resend loop to rescue an answer the restart would have lost
        ) as k,
    ):
        runner_ref.append(k.runner)
        await log.publish(command)
        await log.wait_for(command["id"])
        await until(lambda: answer_was_out)
        await log.publish(command)  # a redelivery is answered again, but restarts nothing
        await log.wait_for(command["id"], count=2)

    assert answer_was_out == [True]
    assert [a["result"] for a in log.to(command["id"])] == [{"restarting_in_s": 1}] * 2


# -- offline ------------------------------------------------------------------------------------


async def test_an_answer_made_offline_reaches_the_console_after_reconnecting(
    uplink_broker, tmp_path
):
    """The broker goes away while the action runs: the answer is kept, and sent once the
    uplink is back; the restart it asks for waits for that."""
    started, release = asyncio.Event(), asyncio.Event()
    restarts: list[str] = []

    async def slow_restart(args: Mapping[str, Any]) -> Mapping[str, Any]:
        started.set()
        await release.wait()
        return {"restarting_in_s": 0}

    async def restart() -> None:
        restarts.append("restarted")

    command = build_command("console-commands", "agent-restart", {})
    async with kiosk(
        uplink_broker,
        tmp_path,
        {"agent-restart": slow_restart},
        after_answer={"agent-restart": restart},
    ) as k:
        async with AnswerLog(uplink_broker, "kiosk-a", session="console-watch") as log:
            await log.publish(command)
            async with asyncio.timeout(5):
                await started.wait()
            uplink_broker.stop()  # orderly: the console's session survives the restart
        await until(lambda: k.uplink.status().state is not ConnectionState.CONNECTED)
        release.set()
        await until(lambda: k.runner.unsent() == [command["id"]])
        assert restarts == []  # the answer is not out: no restart yet

        uplink_broker.start()
        await until(lambda: k.runner.unsent() == [])
        await until(lambda: restarts == ["restarted"])

    # The console, back on its session, receives the answer the broker kept for it.
    async with AnswerLog(uplink_broker, "kiosk-a", session="console-watch") as log:
        await log.wait_for(command["id"])
    assert [a["result"] for a in log.to(command["id"])] == [{"restarting_in_s": 0}]


async def wait_rows(db: str | Path, command_id: str, timeout: float = 15) -> list[Any]:
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(Exception):  # the worker may not have created it yet
                found = rows(db, "SELECT * FROM command_results WHERE command_id = ?", command_id)
                if found:
                    return found
            await asyncio.sleep(0.05)


async def test_no_answer_in_time_raises_no_answer(uplink_broker):
    with pytest.raises(NoAnswer) as no:
        await send_command(console_settings(uplink_broker), "kiosk-z", "ping", wait_s=0.3)
    assert no.value.device_id == "kiosk-z"
    assert "kiosk-z" in str(no.value)


# -- diagnostics --------------------------------------------------------------------------------


async def test_diagnostics_are_bounded_by_section_and_in_total():
    async def readers(args: Mapping[str, Any]) -> Any:
        return {"card": "ok", "mrz": "down"}

    def logs(args: Mapping[str, Any]) -> Any:
        return [f"log line {n}" for n in range(args.get("log_lines", 10))]

    def broken(args: Mapping[str, Any]) -> Any:
        raise OSError("no such file /home/traveller-L898902C3")

    diagnostics = diagnostics_action(
        {"readers": readers, "logs": logs, "broken": broken, "big": lambda a: "x" * 5000},
        max_section_bytes=1000,
        max_total_bytes=2000,
    )

    everything = await diagnostics({"log_lines": 3})
    assert everything["readers"] == {"card": "ok", "mrz": "down"}
    assert everything["logs"] == ["log line 0", "log line 1", "log line 2"]
    assert everything["broken"] == {"error": "OSError"}  # the text stays in the kiosk's log
    assert everything["big"]["truncated"] is True
    assert everything["big"]["bytes"] == 5002
    assert len(everything["big"]["head"]) == 1000

    # Two sections cut to their limit no longer fit the total: the later one is left out.
    many_logs = await diagnostics({"log_lines": 200})
    assert many_logs["logs"]["truncated"] is True
    assert many_logs["omitted"] == ["big"]
    assert "big" not in many_logs

    assert await diagnostics({"sections": ["readers"]}) == {
        "readers": {"card": "ok", "mrz": "down"}
    }
    with pytest.raises(ValueError, match="sections must be a list"):
        await diagnostics({"sections": "readers"})

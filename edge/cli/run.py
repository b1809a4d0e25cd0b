"""``borderlane-edge run``: the kiosk agent itself (what the systemd unit starts)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import sys
from pathlib import Path

import click

from edge.agent import preflight
from edge.agent.agent import DECOMMISSIONED, Agent, AgentStartError, Decommissioned
from edge.agent.config import AgentConfig, AgentConfigError, load_config

from .common import BadArgument, OneLineErrors

DECOMMISSIONED_EXIT = 3
"""Exit status of a decommissioned kiosk's agent; the unit's RestartPreventExitStatus."""

__all__ = ["run"]


def agent_version() -> str:
    try:
        return importlib.metadata.version("borderlane")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "0.0.0+source"


@click.command("run", cls=OneLineErrors)
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The kiosk's configuration file (TOML).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Check the configuration and every file, folder and device it names, then exit.",
)
def run(config_path: Path, check: bool) -> None:
    """Run the kiosk agent: card and MRZ readers, the lane, the uplink, health, kiosk pages.

    Runs until SIGTERM or Ctrl-C, publishing offline before it goes. Every part is restarted
    on failure; the lane keeps deciding and recording with no network at all. Logs go to
    stderr (the journal under systemd) and never contain personal data.

    --check reads the configuration, then checks as this user what it names: the TLS
    certificate (parses, days left, issued to agent.device_id), its key (private, 0600, the
    certificate's), the CA files, the CBIC issuer, CSCA and watchlist key folders (at least one
    usable key), the officers file, the state directory (writable, encrypted when configured,
    free space above the outbox reserve), the MRZ port and the card readers. One line per
    problem, naming the key; hardware not plugged in and an expiring certificate are warnings.
    The agent runs the same checks at start and reports the warnings in its heartbeat.

    \b
    Examples:
      borderlane-edge run --config /etc/borderlane/kiosk.toml
      borderlane-edge run --config kiosk.toml --check     check only

    \b
    Exit status: 0 stopped cleanly (--check: usable, warnings aside), 1 could not start
    (database, watchlist or trust files unusable), 2 bad configuration or a fatal problem
    with a file it names (the line names the key).
    """
    try:
        config = load_config(config_path, agent_version=agent_version())
    except AgentConfigError as exc:
        raise BadArgument(f"{config_path}: {exc}") from None
    if check:
        _check(config_path, config)
        return
    logging.basicConfig(
        level=config.agent.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    os.umask(0o077)  # defence in depth: whatever the agent or a library creates is private
    agent = Agent(config)
    try:
        agent.preflight()
        agent.open()
    except Decommissioned as exc:  # not a failure: systemd must not restart it (exit status 3)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(DECOMMISSIONED_EXIT)
    except AgentStartError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    outcome = asyncio.run(agent.run())
    if outcome == "restart":  # agent-restart or a changed configuration: a fresh process
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def _check(config_path: Path, config: AgentConfig) -> None:
    """``--check``: one line per finding, then the verdict; exit 2 if any finding is fatal."""
    marker = config.agent.data_dir / DECOMMISSIONED
    if marker.exists():
        # Exit 0: the unit's ExecStartPre must pass so that ExecStart refuses with exit 3,
        # which RestartPreventExitStatus keeps down (a failed ExecStartPre would restart).
        click.echo(f"{config_path}: decommissioned: the agent will not start; enroll it again")
        return
    findings = preflight.check(config)
    for finding in findings:
        click.echo(str(finding))
    fatal = sum(finding.fatal for finding in findings)
    if fatal:
        warned = len(findings) - fatal
        noun = "warning" if warned == 1 else "warnings"
        click.echo(f"{config_path}: not usable ({fatal} fatal, {warned} {noun})")
        sys.exit(2)
    validity = preflight.certificate_validity(config)
    click.echo(
        f"{config_path}: ok (device {config.agent.device_id}, lane {config.lane.lane}; {validity})"
    )

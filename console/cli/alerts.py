"""``borderlane-console alerts``: evaluate the fleet's alert rules continuously, list alerts.

A thin layer over :mod:`console.alerts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from mqtt_schemas import TopicError, topics
from mqtt_schemas.identifiers import NAME

from .. import alerts as alertsmod
from ..settings import Settings, SettingsError
from ..store import StoreError, open_database
from ..store.database import describe, reason
from .options import (
    configure_logging,
    db_option,
    existing_database,
    instance_option,
    instance_settings,
    one_line_errors,
    run_until_stopped,
)

log = logging.getLogger("borderlane.console.alerts")


@click.group("alerts")
def alerts_group() -> None:
    """Fleet alerts: kiosks offline, silent, with records waiting, an old watchlist, a part
    down, an unsynchronised clock or a full disk (thresholds: [alerts] in console.toml).

    \b
    Examples:
      borderlane-console alerts watch --db console.db --instance /var/lib/borderlane/web
      borderlane-console alerts list --db console.db --open
      borderlane-console alerts list --db console.db --rule part-down --json
    """


@alerts_group.command("watch")
@db_option("must exist")
@instance_option("the [alerts] thresholds")
@click.option(
    "--every",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    help="Seconds between evaluations.",
)
@click.option("--once", is_flag=True, help="Evaluate once, print what changed, and exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log every pass.")
@one_line_errors(StoreError, SettingsError)
def watch_command(db: str, instance: Path | None, every: float, once: bool, verbose: bool) -> None:
    """Evaluate the alert rules every --every seconds until SIGINT or SIGTERM: raise an alert
    when a rule starts to hold for a kiosk, clear it when it stops (the history is kept), and
    purge the heartbeat history older than [alerts] heartbeat_days. Several evaluators may run
    against one database (they take turns).

    \b
    Examples:
      borderlane-console alerts watch --db console.db --instance /var/lib/borderlane/web
      borderlane-console alerts watch --db console.db --once
    """
    settings = instance_settings(instance)
    engine = existing_database(db)
    try:
        if once:
            changes = alertsmod.evaluate(engine, settings)
            alertsmod.purge_heartbeats(engine, settings.alerts.heartbeat_days)
            for change in changes:
                click.echo(f"{change.kind}\t{change.device_id}\t{change.rule}\t{change.detail}")
            return
        configure_logging(verbose)
        log.info("evaluating the alert rules on %s every %g s", describe(db), every)
        run_until_stopped(lambda stop: _watch(engine, db, settings, every, stop))
    finally:
        engine.dispose()


async def _watch(
    engine: Engine, db: str, settings: Settings, every: float, stop: asyncio.Event
) -> None:
    failing = False
    while not stop.is_set():
        try:
            changes = await asyncio.to_thread(alertsmod.evaluate, engine, settings)
            purged = await asyncio.to_thread(
                alertsmod.purge_heartbeats, engine, settings.alerts.heartbeat_days
            )
        except SQLAlchemyError as exc:
            # Once when it goes, once when it is back: the passes between are debug lines.
            if not failing:
                log.warning("console database %s: %s; retrying", describe(db), reason(exc))
            else:
                log.debug("console database still unavailable: %s", reason(exc))
            failing = True
        else:
            if failing:
                log.warning("console database %s is back", describe(db))
            failing = False
            level = logging.INFO if changes or purged else logging.DEBUG
            log.log(
                level,
                "%s; %d old heartbeats purged",
                alertsmod.summarize(changes),
                purged,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


@alerts_group.command("list")
@db_option("must exist")
@click.option("--open", "open_only", is_flag=True, help="Only the open alerts.")
@click.option("--device", "device_id", help="Only this kiosk's.")
@click.option("--rule", help="Only this rule or family (offline, part-down, part-down:camera…).")
@click.option("--post", help="Only the kiosks at this post (site id).")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many cleared alerts (the open ones are always all listed).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@one_line_errors(StoreError)
def list_command(
    db: str,
    open_only: bool,
    device_id: str | None,
    rule: str | None,
    post: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List alerts: the open ones first (newest first), then the cleared history.

    \b
    Examples:
      borderlane-console alerts list --db console.db --open
      borderlane-console alerts list --db console.db --post bz-santa-elena --json
    """
    if device_id is not None:
        try:
            topics.check_device_id(device_id)
        except TopicError as exc:
            raise click.BadParameter(str(exc), param_hint="--device") from None
    if rule is not None and not _rule_ok(rule):
        raise click.BadParameter("a rule such as offline or part-down:camera", param_hint="--rule")
    if post is not None and not NAME.fullmatch(post):
        raise click.BadParameter("a site id such as bz-santa-elena", param_hint="--post")
    engine = open_database(db, readonly=True)
    try:
        with engine.connect() as conn:
            found = alertsmod.list_alerts(
                conn, open_only=open_only, device_id=device_id, rule=rule, post=post, limit=limit
            )
    finally:
        engine.dispose()
    for alert in found:
        if as_json:
            click.echo(json.dumps(alert.as_dict(), ensure_ascii=False))
        else:
            state = "open" if alert.open else f"cleared {alert.cleared_at}"
            click.echo(
                f"{alert.raised_at}\t{alert.device_id}\t{alert.post or '-'}\t{alert.rule}\t"
                f"{state}\t{alert.detail}"
            )
    if not found and not as_json:
        click.echo("no alerts", err=True)


def _rule_ok(rule: str) -> bool:
    family, _, part = rule.partition(":")
    if family not in alertsmod.RULES:
        return False
    return not part or (family == alertsmod.PART_DOWN and bool(NAME.fullmatch(part)))

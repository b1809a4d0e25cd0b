"""``borderlane-console contract``: the MQTT wire contract shared with the kiosks."""

from __future__ import annotations

import json
import sys
from typing import TextIO

import click

import mqtt_schemas
from mqtt_schemas import PayloadError, topics, validation


@click.group()
def contract() -> None:
    """The MQTT wire contract shared with the kiosks (mqtt-schemas/)."""


@contract.command("topics")
def contract_topics() -> None:
    """List every topic with its payload schema, publisher, QoS and retain flag.

    \b
    Example:
      borderlane-console contract topics
    """
    for channel in topics.CHANNELS:
        if channel.scope == "device":
            topic = topics.device_filter(channel.name)
        else:
            topic = topics.fleet_topic(channel.name)
        retain = "retained" if channel.retain else "-"
        click.echo(
            f"{topic:<52} {mqtt_schemas.tag(channel.schema):<26} "
            f"{channel.publisher:<8} qos{channel.qos} {retain}"
        )


@contract.command("validate")
@click.argument("name", type=click.Choice(validation.names()), metavar="NAME")
@click.argument("files", type=click.File("r"), nargs=-1)
def contract_validate(name: str, files: tuple[TextIO, ...]) -> None:
    """Check payloads against schema NAME: JSON files, or JSON Lines on standard input.

    Prints one line per invalid payload naming the failing field and exits 1 if any is
    invalid; prints a count and exits 0 when all are valid.

    \b
    Examples:
      borderlane-console contract validate crossing record.json
      borderlane-console contract validate health < heartbeats.jsonl
    """
    checked = invalid = 0
    for source, label, text in _payloads(files or (sys.stdin,)):
        checked += 1
        try:
            mqtt_schemas.validate(name, json.loads(text))
        except json.JSONDecodeError as exc:
            invalid += 1
            click.echo(f"{source}:{label}: not JSON: {exc.msg} at column {exc.colno}", err=True)
        except PayloadError as exc:
            invalid += 1
            click.echo(f"{source}:{label}: {exc}", err=True)
    if checked == 0:
        raise click.ClickException("no payloads to check")
    if invalid:
        raise click.ClickException(f"{invalid} of {checked} payloads are not valid {name}")
    click.echo(f"{checked} valid {name} payload{'s' if checked != 1 else ''}")


def _payloads(files: tuple[TextIO, ...]):
    """(source, location, text) per payload: a whole file, or each line of standard input."""
    for handle in files:
        source = getattr(handle, "name", "-")
        if handle is sys.stdin or source in ("-", "<stdin>"):
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield "stdin", f"line {number}", line
        else:
            yield source, "file", handle.read()

"""``borderlane-edge storage``: the kiosk's state directory encrypted at rest (fscrypt).

Run as root, by the image (``images/encrypt-state.sh``) and at boot
(``images/systemd/borderlane-unlock.service``); see :mod:`edge.agent.encryption`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from edge.agent.encryption import (
    CIPHERS,
    EncryptionError,
    State,
    lock,
    new_key_file,
    read_key_material,
    setup,
    status,
    unlock,
)

from .common import OneLineErrors

__all__ = ["storage"]

T = TypeVar("T")

_DIRECTORY = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
_KEY = click.option(
    "--key-file",
    required=True,
    help="Key material, 32 to 4096 bytes: a file only its owner can read, or - for standard"
    " input (from whatever unseals it: a TPM, a secure element, the Pi's OTP key).",
)


@click.group("storage")
def storage() -> None:
    """The state directory encrypted by the kernel (ext4 encryption, fscrypt v2).

    \b
    Examples:
      borderlane-edge storage new-key /etc/borderlane/state.key
      borderlane-edge storage setup --key-file /etc/borderlane/state.key /var/lib/borderlane
      borderlane-edge storage unlock --key-file /etc/borderlane/state.key /var/lib/borderlane
      borderlane-edge storage status /var/lib/borderlane
      borderlane-edge storage lock --key-file /etc/borderlane/state.key /var/lib/borderlane
    """


@storage.command("new-key", cls=OneLineErrors)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def new_key_command(path: Path) -> None:
    """Write 64 random bytes to a new key file (0600); never overwrites one."""
    _run(lambda: new_key_file(path))
    click.echo(f"wrote a new key to {path}")


@storage.command("setup", cls=OneLineErrors)
@_KEY
@click.option("--cipher", type=click.Choice(sorted(CIPHERS)), default="aes", show_default=True)
@_DIRECTORY
def setup_command(key_file: str, cipher: str, directory: Path) -> None:
    """Make a missing or empty directory encrypted, its key added. Prints its state (JSON)."""
    _echo(_run(lambda: setup(directory, _material(key_file), cipher)))


@storage.command("unlock", cls=OneLineErrors)
@_KEY
@_DIRECTORY
def unlock_command(key_file: str, directory: Path) -> None:
    """Add the directory's key to the kernel (at boot, before the agent starts)."""
    _echo(_run(lambda: unlock(directory, _material(key_file))))


@storage.command("lock", cls=OneLineErrors)
@_KEY
@_DIRECTORY
def lock_command(key_file: str, directory: Path) -> None:
    """Remove the directory's key from the kernel (the agent stopped first)."""
    _echo(_run(lambda: lock(directory, _material(key_file))))


@storage.command("status", cls=OneLineErrors)
@_DIRECTORY
def status_command(directory: Path) -> None:
    """Whether the directory is encrypted, how, and whether its key is in (JSON)."""
    _echo(_run(lambda: status(directory)))


def _material(key_file: str) -> bytes:
    return read_key_material(sys.stdin.buffer if key_file == "-" else Path(key_file))


def _run(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except EncryptionError as exc:
        raise click.ClickException(str(exc)) from None


def _echo(state: State) -> None:
    click.echo(json.dumps(state.to_dict()))

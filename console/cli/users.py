"""``borderlane-console users``: the console's accounts, through :class:`console.accounts.Accounts`
(the admins' web pages use the same functions).

Passwords are prompted for (twice, not echoed), never taken from the command line, where other
users of the machine could read them in the process list and the shell keeps them in its
history. The agencies an account may belong to come from ``console.toml`` (``--settings``).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..access import LEVELS, ROLES
from ..accounts import Account, AccountError, Accounts
from ..settings import SettingsError, load_settings
from ..store import StoreError, open_database
from .options import db_option, one_line_errors

_ERRORS = (AccountError, SettingsError, StoreError)


def _settings_option(command):
    return click.option(
        "--settings",
        "settings_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="BORDERLANE_CONSOLE_SETTINGS",
        show_envvar=True,
        help="console.toml with the agencies (default: the built-in agencies).",
    )(command)


def _accounts(db: str, settings_path: Path | None) -> Accounts:
    return Accounts(open_database(db), load_settings(settings_path))


def _prompt_password(what: str) -> str:
    return click.prompt(
        what, hide_input=True, confirmation_prompt="Again, to be sure", show_default=False
    )


def _line(account: Account) -> str:
    state = "disabled" if account.disabled else "active"
    extras = [state]
    if account.must_change_password:
        extras.append("must change password")
    if account.has_token:
        extras.append("API token")
    posts = ",".join(sorted(account.posts)) or "-"
    return (
        f"{account.username:<16} {account.role:<10} level {account.level}  "
        f"{account.agency:<12} posts {posts:<20} {account.display_name}  ({', '.join(extras)})"
    )


@click.group("users")
def users_group() -> None:
    """Manage the console's user accounts: add, list, disable, set a password, API tokens."""


@users_group.command("add")
@db_option()
@_settings_option
@click.argument("username")
@click.option("--name", "display_name", required=True, help="The person's name, as shown.")
@click.option("--agency", required=True, help="Their agency's id (from console.toml).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What they do.")
@click.option(
    "--level",
    required=True,
    type=click.IntRange(min(LEVELS), max(LEVELS)),
    help="Clearance level, 1 to 4.",
)
@click.option(
    "--post",
    "posts",
    multiple=True,
    metavar="SITE",
    help="A post (site id) they serve; repeat for several; '*' for every post.",
)
@click.option(
    "--no-forced-change",
    is_flag=True,
    help="The password is the user's own (the first admin creating their own account): "
    "do not ask for a new one at the first login.",
)
@one_line_errors(*_ERRORS)
def add_command(
    db: str,
    settings_path: Path | None,
    username: str,
    display_name: str,
    agency: str,
    role: str,
    level: int,
    posts: tuple[str, ...],
    no_forced_change: bool,
) -> None:
    """Add an account; the first password is prompted for (twice) and, unless
    --no-forced-change, must be replaced by the user at their first login.

    \b
    Examples:
      borderlane-console users add ada --db console.db --name "Ada Lopez" \\
          --agency immigration --role admin --level 4 --no-forced-change
      borderlane-console users add msantos --db console.db --name "Maria Santos" \\
          --agency immigration --role officer --level 2 --post bz-santa-elena
      borderlane-console users add jchen --db console.db --settings console.toml \\
          --name "June Chen" --agency statistics --role analyst --level 2
    """
    accounts = _accounts(db, settings_path)
    try:
        if accounts.find(username) is not None:  # say so before asking for a password
            raise AccountError(f"user {username.strip().lower()!r} already exists")
        password = _prompt_password(f"Password for {username}")
        created = accounts.create(
            username,
            display_name,
            agency=agency,
            role=role,
            level=level,
            posts=posts,
            password=password,
            must_change_password=not no_forced_change,
        )
    finally:
        accounts.engine.dispose()
    click.echo(f"added {_line(created)}")


@users_group.command("list")
@db_option("must exist")
@_settings_option
@one_line_errors(*_ERRORS)
def list_command(db: str, settings_path: Path | None) -> None:
    """List every account: username, role, level, agency, posts, name and state.

    \b
    Example:
      borderlane-console users list --db console.db
    """
    accounts = Accounts(open_database(db, readonly=True), load_settings(settings_path))
    try:
        found = accounts.all_accounts()
    finally:
        accounts.engine.dispose()
    for account in found:
        click.echo(_line(account))
    if not found:
        click.echo(
            "no accounts yet: add the first admin with borderlane-console users add", err=True
        )


@users_group.command("disable")
@db_option("must exist")
@_settings_option
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable a disabled account again instead.")
@one_line_errors(*_ERRORS)
def disable_command(db: str, settings_path: Path | None, username: str, enable: bool) -> None:
    """Stop an account logging in and using its API token (its open sessions end at their
    next request); --enable undoes it. The last enabled admin cannot be disabled.

    \b
    Examples:
      borderlane-console users disable msantos --db console.db
      borderlane-console users disable msantos --db console.db --enable
    """
    accounts = _accounts(db, settings_path)
    try:
        changed = accounts.enable(username) if enable else accounts.disable(username)
    finally:
        accounts.engine.dispose()
    click.echo(f"{'enabled' if enable else 'disabled'} {changed.username}")


@users_group.command("set-password")
@db_option("must exist")
@_settings_option
@click.argument("username")
@click.option(
    "--no-forced-change",
    is_flag=True,
    help="Do not ask the user for a new password at their next login.",
)
@one_line_errors(*_ERRORS)
def set_password_command(
    db: str, settings_path: Path | None, username: str, no_forced_change: bool
) -> None:
    """Set an account's password (prompted for, twice): a reset for a user who forgot theirs
    or was locked out. The user's sessions end; unless --no-forced-change they choose a new
    password at the next login.

    \b
    Example:
      borderlane-console users set-password msantos --db console.db
    """
    accounts = _accounts(db, settings_path)
    try:
        if accounts.find(username) is None:
            raise AccountError(f"no user {username.strip().lower()!r}")
        password = _prompt_password(f"New password for {username}")
        changed = accounts.set_password(username, password, must_change=not no_forced_change)
    finally:
        accounts.engine.dispose()
    click.echo(f"password set for {changed.username}")


@users_group.command("token")
@db_option("must exist")
@_settings_option
@click.argument("username")
@click.option("--revoke", is_flag=True, help="Withdraw the account's token instead.")
@one_line_errors(*_ERRORS)
def token_command(db: str, settings_path: Path | None, username: str, revoke: bool) -> None:
    """Make a new API token for an account (replacing its old one) and print it, once: only its
    SHA-256 is stored. Send it as "Authorization: Bearer <token>" to /api/...; it has the
    account's access, and stops working when the account is disabled or the token revoked.

    \b
    Examples:
      borderlane-console users token analyst1 --db console.db > analyst1.token
      curl -H "Authorization: Bearer $(cat analyst1.token)" \\
          http://127.0.0.1:8080/api/crossings/counts
      borderlane-console users token analyst1 --db console.db --revoke
    """
    accounts = _accounts(db, settings_path)
    try:
        if revoke:
            changed = accounts.revoke_token(username)
            click.echo(f"API token of {changed.username} revoked", err=True)
            return
        token = accounts.issue_token(username)
    finally:
        accounts.engine.dispose()
    click.echo(token)
    click.echo("keep it secret: it is shown this once (only its hash is stored)", err=True)

"""What the command groups share: errors that print as one line with the right exit status
(the quiet end in a closed pipe is :mod:`mqtt_schemas.cli_pipes`, shared with the server side)."""

from __future__ import annotations

import click

__all__ = ["BadArgument", "OneLineErrors"]


class BadArgument(click.ClickException):
    """One ``Error: ...`` line and exit status 2: the command line cannot be carried out."""

    exit_code = 2


class OneLineErrors(click.Command):
    """A command whose usage errors are one ``Error:`` line (exit 2), like all its errors.

    Click's own (a bad --tamper choice, a missing option) otherwise print the usage and a hint
    around the error; a technician reading a terminal, or a script checking stderr, wants one
    line.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise BadArgument(error.format_message()) from None

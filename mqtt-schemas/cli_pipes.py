"""Quiet ends in a pipe whose reader left, for every Borderlane command line.

``borderlane-console export crossings ... | head -2``, ``borderlane-edge ... | head`` and
``borderlane-provision ... | head`` must stop as Unix tools do: quietly, status 0.
:class:`PipeSafeGroup` is the top command group of all three. It lives here, beside the wire
contract, because this package is the only code the kiosk and the server side share
(tests/test_house_rules.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import sys
from collections.abc import Iterator
from typing import Any

import click

__all__ = ["PipeSafeGroup"]


class PipeSafeGroup(click.Group):
    """The top command group: a closed standard output ends any command quietly, status 0.

    ``borderlane-edge ... | head -1``: once ``head`` has its line it exits, and the command's
    next write fails with EPIPE. Unix tools stop quietly then (SIGPIPE kills them); Python
    ignores SIGPIPE and raises BrokenPipeError instead, which commands turn into an
    ``Error: ... Broken pipe`` line and status 1, or which surfaces at exit when the last
    buffered output is flushed. Here, once, for every command: when a command fails because
    its standard output was closed (the failure comes from EPIPE *and* no one reads standard
    output any more, so a broken connection elsewhere is still an error), the rest of its
    output goes to /dev/null and it exits 0.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        with _quiet_when_stdout_closed():  # parsing prints --help and --version
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        with _quiet_when_stdout_closed():
            return super().invoke(ctx)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().main(*args, **kwargs)
        finally:  # what is still buffered is written now, where a failure can be handled
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                _quiet_exit()


@contextlib.contextmanager
def _quiet_when_stdout_closed() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if _from_epipe(exc) and _stdout_closed():
            _quiet_exit()
        raise


def _from_epipe(exc: BaseException) -> bool:
    """Whether *exc*, or an exception it was raised from or while handling, is EPIPE (commands
    turn OSError into their own one-line errors; the cause stays in the chain)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        error = stack.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.EPIPE:
            return True
        stack += [error.__cause__, error.__context__]
    return False


def _stdout_closed() -> bool:
    """Whether standard output is a pipe or socket that nobody reads any more (POLLERR)."""
    poller = select.poll()
    poller.register(1, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quiet_exit() -> None:
    """Exit 0 with standard output on /dev/null, so that flushing it at exit cannot fail."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.exit(0)

"""Errors raised by the wire contract."""

from __future__ import annotations


class ContractError(ValueError):
    """Something does not follow the Borderlane wire contract."""


class TopicError(ContractError):
    """A topic or an id used to build one is outside the contract."""


class PayloadError(ContractError):
    """A payload does not validate against its schema.

    ``path`` is a JSON Pointer to the failing field (``/document/issuing_state``; ``""`` for the
    payload as a whole) so that logs, quarantine records and CLI errors can name it.
    """

    def __init__(self, schema: str, path: str, problem: str) -> None:
        self.schema = schema
        self.path = path
        self.problem = problem
        super().__init__(f"{schema}: {path or '(payload)'}: {problem}")

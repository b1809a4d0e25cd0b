"""Console ingest: kiosk messages from the broker into the store, acked after commit
(:mod:`.worker`; design notes in ``ingest.md``)."""

from .worker import DEFAULT_GROUP, IngestConfig, IngestError, IngestWorker, Stats, subscriptions

__all__ = ["DEFAULT_GROUP", "IngestConfig", "IngestError", "IngestWorker", "Stats", "subscriptions"]

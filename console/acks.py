"""Application-level acks: which record ids to tell each kiosk about, and the ``ack@1`` payloads.

An ack is sent only after the database commit that stored (or quarantined) its records. Per
kiosk and per commit, the ids go out in as few payloads as the contract allows (at most 1000
``acked`` ids each).

``acked`` lists every record id the commit settled for the kiosk, including the ones it put in
quarantine; ``rejected`` names, among them, those that went to quarantine and why. The ack
schema requires at least one ``acked`` id, so an ack that only rejects could not be sent
otherwise; and a kiosk purges both kinds alike, so one that reads only ``acked`` still purges a
record the console will never store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mqtt_schemas import tag, topics
from mqtt_schemas.envelope import clock_state, utc_now, uuid7

MAX_IDS = 1000
"""The ack schema's bound on ``acked`` (and ``rejected``) per payload."""


@dataclass
class DeviceAcks:
    """What one commit settled for one kiosk."""

    acked: dict[str, None] = field(default_factory=dict)
    """Ids in first-settled order (a dict as an ordered set)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Id -> reason, for the ids that went to quarantine."""

    def ack(self, record_id: str) -> None:
        self.acked[record_id] = None

    def reject(self, record_id: str, reason: str) -> None:
        self.acked[record_id] = None
        self.rejected.setdefault(record_id, reason)

    def chunks(self) -> Iterator[tuple[list[str], list[dict[str, str]]]]:
        """(acked, rejected) per payload, at most :data:`MAX_IDS` ids each."""
        ids = list(self.acked)
        for start in range(0, len(ids), MAX_IDS):
            chunk = ids[start : start + MAX_IDS]
            rejected = [{"id": i, "reason": self.rejected[i]} for i in chunk if i in self.rejected]
            yield chunk, rejected


def payload_count(acks: dict[str, DeviceAcks]) -> int:
    """How many ack payloads *acks* makes (each takes one of the console's sequence numbers)."""
    return sum(-(-len(a.acked) // MAX_IDS) for a in acks.values())


def build(
    node_id: str, acks: dict[str, DeviceAcks], seqs: range, clock: dict[str, Any] | None = None
) -> list[tuple[str, bytes]]:
    """``(topic, payload)`` for every ack, numbered with *seqs* (reserved in the commit)."""
    schema = tag("ack")
    clock = clock if clock is not None else clock_state()
    now = utc_now()
    numbers = iter(seqs)
    messages = []
    for device_id, device_acks in acks.items():
        topic = topics.device_topic(device_id, "acks")
        for acked, rejected in device_acks.chunks():
            payload: dict[str, Any] = {
                "schema": schema,
                "id": uuid7(),
                "device_id": node_id,
                "seq": next(numbers),
                "time": now,
                "clock": clock,
                "acked": acked,
            }
            if rejected:
                payload["rejected"] = rejected
            messages.append((topic, json.dumps(payload, separators=(",", ":")).encode()))
    return messages

"""How fast both sides check the wire contract: payload validation and topic parsing.

The console validates every incoming payload before storing it, and the ingest target is
5,000 crossings/s on a 2-core machine; validation must take a small share of one core at that
rate, so its target here is 4x the ingest rate.
"""

from __future__ import annotations

import mqtt_schemas
from mqtt_schemas import topics

from . import Figure, at_least, rate

INGEST_TARGET_PER_S = 5000


def run(quick: bool) -> list[Figure]:
    count = 200 if quick else 20000
    figures = []
    for name in ("crossing", "health", "screening-hit"):
        payload = mqtt_schemas.examples(name)["valid"][0]["payload"]
        mqtt_schemas.validate(name, payload)  # compile before timing
        per_second = rate(lambda n=name, p=payload: mqtt_schemas.validate(n, p), count)
        figures.append(
            at_least(
                f"validate {name}@1", per_second, "payloads/s", 4 * INGEST_TARGET_PER_S, "one core"
            )
        )
    topic = topics.device_topic("kiosk-bz-01", "crossings")
    figures.append(Figure("parse topic", rate(lambda: topics.parse(topic), count * 5), "topics/s"))
    return figures

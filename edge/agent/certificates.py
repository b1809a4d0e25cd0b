"""The kiosk's own certificate: its health, and its renewal before it runs out.

Certificates from enrollment live weeks (``borderlane-console devices serve-enrollment
--days``). :class:`CertificateKeeper` is the agent part ``certificate``:

* its health entry says how long the certificate has left: ``ok``; ``degraded`` while a due
  renewal keeps failing (the detail says why); ``down`` within ``alarm_days`` of expiry or after
  it (the console's fleet dashboard raises its part-down alert well before the kiosk is cut off);
* when ``renew_at`` of the lifetime has passed (two thirds by default), it asks the console for
  a new certificate with the current one (:func:`edge.uplink.enroll.renew`), checks the new one
  with a TLS handshake at the broker, and only then puts it in place
  (:func:`edge.uplink.enroll.promote`): the uplink uses it from its next connection, and the old
  one stays valid until it expires. A failure is retried every ``retry_s``.

A kiosk offline past its certificate's expiry cannot renew (the console refuses an expired
certificate): it enrolls again with a new token; its outbox is untouched, so nothing it recorded
offline is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from mqtt_schemas.health import component_entry

from ..uplink.enroll import EnrollError, check_with_broker, next_of, promote, renew

log = logging.getLogger("borderlane.agent.certificate")


@dataclass(frozen=True)
class RenewalSettings:
    """``[enrollment]`` in kiosk.toml: where and when to renew the kiosk's certificate."""

    url: str | None = None
    """The console's enrollment endpoint (https://); none: never renew (alarm only)."""
    ca_file: Path | None = None
    """The service CA, by which the console's endpoint is recognised."""
    renew_at: float = 2 / 3
    """The share of the certificate's lifetime after which it is renewed."""
    alarm_days: float = 7.0
    retry_s: float = 3600.0


class CertificateKeeper:
    """Watches ``cert_file`` (beside ``key_file`` in one directory) and renews it."""

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        broker: tuple[str, int, Path],
        settings: RenewalSettings,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.broker = broker
        self.settings = settings
        self.clock = clock
        self.last_error: str | None = None
        self.renewed_at: dt.datetime | None = None
        self._since = clock()

    def certificate(self) -> x509.Certificate | None:
        try:
            return x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        except (OSError, ValueError):
            return None

    def due(self, now: dt.datetime | None = None) -> bool:
        """Whether the renewal point of the current certificate's lifetime has passed."""
        certificate = self.certificate()
        if certificate is None:
            return False
        start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        return (now or self.clock()) >= start + (end - start) * self.settings.renew_at

    def component(self) -> dict[str, Any]:
        """The ``certificate`` entry of the heartbeat's components."""
        now = self.clock()
        certificate = self.certificate()
        if certificate is None:
            return component_entry("down", self._since, f"cannot read {self.cert_file.name}")
        left = certificate.not_valid_after_utc - now
        days = left.total_seconds() / 86400
        until = certificate.not_valid_after_utc.date().isoformat()
        if left.total_seconds() <= 0:
            return component_entry("down", self._since, f"expired {until}: enroll again")
        detail = f"valid until {until} ({days:.1f} days)"
        if self.last_error:
            detail += f"; renewal failing: {self.last_error}"
        if days <= self.settings.alarm_days:
            return component_entry("down", self._since, detail)
        if self.last_error and self.due(now):
            return component_entry("degraded", self._since, detail)
        return component_entry("ok", self._since, detail)

    def renew_now(self) -> None:
        """Renew (blocking): ask, check at the broker, promote. :class:`EnrollError` if not."""
        settings = self.settings
        if settings.url is None or settings.ca_file is None:
            raise EnrollError("config", "no [enrollment] url in the configuration")
        promote(self.cert_file, self.key_file)  # one a power cut interrupted
        fresh = renew(settings.url, self.cert_file, self.key_file, ca_file=settings.ca_file)
        host, port, ca_file = self.broker
        check_with_broker(host, port, ca_file, fresh, next_of(self.key_file))
        promote(self.cert_file, self.key_file)

    async def run(self, ready: Callable[[], None] = lambda: None) -> None:
        """Check now and every ``retry_s`` (or sooner when renewal is near); renew when due."""
        ready()
        while True:
            if self.settings.url is not None and self.due():
                try:
                    await asyncio.to_thread(self.renew_now)
                except EnrollError as exc:
                    self.last_error = str(exc)
                    log.warning("certificate renewal failed: %s", exc)
                else:
                    self.last_error = None
                    self.renewed_at = self.clock()
                    log.info("certificate renewed; in use from the next connection")
                    continue
            await asyncio.sleep(self.settings.retry_s)

"""The console's configuration: ``console.toml`` in the instance folder, strict (an unknown key is
an error naming it), every value checked, defaults for everything.

::

    settings = load_settings("/var/lib/borderlane/console.toml")   # or Settings() for defaults
    settings.agencies["police"]          # "Belize Police Department"
    settings.alerts.offline_minutes      # 10

Example (every table optional)::

    border_agency = "immigration"          # the agency whose staff work the posts

    [agencies]                             # id = name
    immigration = "Immigration and Nationality Department"
    police = "Belize Police Department"

    [lists]                                # watchlist list -> the agencies it is shared with
    national-wanted = ["immigration", "police"]

    [session]
    idle_minutes = 30
    absolute_hours = 12

    [lockout]
    failures = 5                           # per account, and per address, within the window
    window_minutes = 15

    [audit]
    retention_days = 730

    [alerts]
    offline_minutes = 10
    heartbeat_stale_minutes = 5
    outbox_oldest_minutes = 60
    watchlist_max_age_hours = 48
    disk_free_percent = 10
    clock_skew_minutes = 5                 # a kiosk clock this far off the console's is flagged
    heartbeat_days = 2                     # heartbeat history kept for the device pages

    [devices]                              # enrollment and revocation from the web pages
    ca_dir = "/var/lib/borderlane/pki/devices"        # the device CA: revocation rewrites its CRL
    broker_pid_file = "/run/mosquitto/mosquitto.pid"  # SIGHUP: the broker re-reads the CRL
    enroll_url = "https://console.example.bz:8443"    # serve-enrollment, as kiosks reach it
    kiosk_state_dir = "/etc/borderlane"               # shown in the kiosk's enroll command
    kiosk_ca_file = "/etc/borderlane/service-ca.crt"  # the service CA, as the kiosk keeps it

Without ``ca_dir`` and ``broker_pid_file`` the web pages still make enrollment tokens, but say
revocation is unavailable (use ``borderlane-console devices revoke``); without ``enroll_url``
the enroll command they show has a placeholder for the address.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ID = re.compile(r"[a-z][a-z0-9._-]{0,63}")

DEFAULT_AGENCIES: dict[str, str] = {
    "immigration": "Immigration and Nationality Department",
    "police": "Police Department",
    "labour": "Department of Labour",
    "justice": "Ministry of Justice",
    "fiu": "Financial Intelligence Unit",
    "statistics": "Statistical Institute",
    "tourism": "Tourism Board",
}


class SettingsError(ValueError):
    """``console.toml`` cannot be used: the message names the key and the problem."""


@dataclass(frozen=True)
class SessionSettings:
    idle_minutes: int = 30
    absolute_hours: int = 12


@dataclass(frozen=True)
class LockoutSettings:
    failures: int = 5
    window_minutes: int = 15


@dataclass(frozen=True)
class AuditSettings:
    retention_days: int = 730


@dataclass(frozen=True)
class AlertSettings:
    offline_minutes: int = 10
    heartbeat_stale_minutes: int = 5
    outbox_oldest_minutes: int = 60
    watchlist_max_age_hours: int = 48
    disk_free_percent: int = 10
    clock_skew_minutes: int = 5
    """A kiosk whose clock is further off the console's than this is flagged (``clock-skew``)."""
    heartbeat_days: int = 2
    """How long the heartbeat history (the device pages' charts) is kept."""


@dataclass(frozen=True)
class DeviceSettings:
    """Enrolling and revoking kiosks from the web pages (``[devices]``)."""

    ca_dir: Path | None = None
    """The device CA's directory (``ca.crt``, ``ca.key``, ``crl.pem``): a revocation signs and
    rewrites its CRL, so the web console then holds the device CA's key."""
    broker_pid_file: Path | None = None
    """The broker's pid file: a revocation sends it SIGHUP to re-read the CRL."""
    enroll_url: str | None = None
    """The enrollment endpoint (``devices serve-enrollment``) as kiosks reach it."""
    kiosk_state_dir: str = "/etc/borderlane"
    kiosk_ca_file: str = "/etc/borderlane/service-ca.crt"

    @property
    def revocation(self) -> bool:
        """Whether the settings name what a revocation needs (not whether it is there)."""
        return self.ca_dir is not None and self.broker_pid_file is not None


@dataclass(frozen=True)
class Settings:
    border_agency: str = "immigration"
    agencies: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_AGENCIES))
    lists: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Watchlist list name -> the agencies it is shared with (unlisted: the border agency)."""
    session: SessionSettings = SessionSettings()
    lockout: LockoutSettings = LockoutSettings()
    audit: AuditSettings = AuditSettings()
    alerts: AlertSettings = AlertSettings()
    devices: DeviceSettings = DeviceSettings()

    def shared_with(self, list_name: str) -> frozenset[str]:
        """The agencies a watchlist list is shared with; a list not configured is shared with
        the border agency only."""
        return self.lists.get(list_name, frozenset({self.border_agency}))


_LIMITS: dict[str, tuple[int, int]] = {
    "idle_minutes": (1, 24 * 60),
    "absolute_hours": (1, 7 * 24),
    "failures": (1, 100),
    "window_minutes": (1, 24 * 60),
    "retention_days": (1, 36500),
    "offline_minutes": (1, 7 * 24 * 60),
    "heartbeat_stale_minutes": (1, 7 * 24 * 60),
    "outbox_oldest_minutes": (1, 30 * 24 * 60),
    "watchlist_max_age_hours": (1, 365 * 24),
    "disk_free_percent": (1, 99),
    "clock_skew_minutes": (1, 30 * 24 * 60),
    "heartbeat_days": (1, 366),
}


def load_settings(path: Path | str | None) -> Settings:
    """The settings in *path*; defaults when *path* is None or does not exist."""
    if path is None or not Path(path).exists():
        return Settings()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not TOML: {exc}") from None
    return parse_settings(data, str(path))


def parse_settings(data: Mapping[str, Any], source: str = "console.toml") -> Settings:
    """Check *data* (a parsed ``console.toml``) and make it settings."""
    tables = {"agencies", "lists", "session", "lockout", "audit", "alerts", "devices"}
    _only(data, tables | {"border_agency"}, source)
    agencies = dict(DEFAULT_AGENCIES)
    if "agencies" in data:
        agencies = {}
        for key, name in _table(data["agencies"], f"{source}: agencies").items():
            if not _ID.fullmatch(key) or not isinstance(name, str) or not name.strip():
                raise SettingsError(f"{source}: agencies.{key}: an id (a-z0-9._-) = a name")
            agencies[key] = name.strip()
    border = data.get("border_agency", "immigration")
    if border not in agencies:
        raise SettingsError(f"{source}: border_agency {border!r} is not one of the agencies")
    lists: dict[str, frozenset[str]] = {}
    for name, shared in _table(data.get("lists", {}), f"{source}: lists").items():
        if not isinstance(shared, list) or not all(a in agencies for a in shared):
            raise SettingsError(f"{source}: lists.{name}: a list of agency ids")
        lists[name] = frozenset(shared)
    return Settings(
        border_agency=border,
        agencies=agencies,
        lists=lists,
        session=SessionSettings(**_numbers(data, "session", SessionSettings, source)),
        lockout=LockoutSettings(**_numbers(data, "lockout", LockoutSettings, source)),
        audit=AuditSettings(**_numbers(data, "audit", AuditSettings, source)),
        alerts=AlertSettings(**_numbers(data, "alerts", AlertSettings, source)),
        devices=_devices(data.get("devices", {}), source),
    )


def _devices(value: Any, source: str) -> DeviceSettings:
    table = _table(value, f"{source}: devices")
    _only(table, set(DeviceSettings.__dataclass_fields__), f"{source}: devices")
    found: dict[str, Any] = {}
    for key, text in table.items():
        where = f"{source}: devices.{key}"
        # Paths and the address go into a command line shown to people: printable, no spaces.
        if not isinstance(text, str) or not re.fullmatch(r"[!-~]{1,1024}", text):
            raise SettingsError(f"{where}: a string of printable characters without spaces")
        if key == "enroll_url":
            if not _https_address(text):
                raise SettingsError(f"{where}: an https://HOST[:PORT] address")
            found[key] = text.rstrip("/")
        elif not text.startswith("/"):
            raise SettingsError(f"{where}: an absolute path")
        elif key in ("ca_dir", "broker_pid_file"):
            found[key] = Path(text)
        else:
            found[key] = text
    return DeviceSettings(**found)


def _https_address(text: str) -> bool:
    parts = urllib.parse.urlsplit(text)
    try:
        parts.port  # noqa: B018 (raises ValueError on a port out of range)
    except ValueError:
        return False
    extras = parts.query or parts.fragment or parts.username or parts.password
    return (
        parts.scheme == "https" and bool(parts.hostname) and parts.path in ("", "/") and not extras
    )


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingsError(f"{where}: expected a table")
    return value


def _only(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _numbers(data: Mapping[str, Any], name: str, kind: type, source: str) -> dict[str, int]:
    table = _table(data.get(name, {}), f"{source}: {name}")
    known = set(kind.__dataclass_fields__)
    _only(table, known, f"{source}: {name}")
    found = {}
    for key, value in table.items():
        low, high = _LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingsError(f"{source}: {name}.{key}: a whole number from {low} to {high}")
        found[key] = value
    return found

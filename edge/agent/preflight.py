"""Preflight: does everything ``kiosk.toml`` names exist and work, before the kiosk relies on it?

:func:`edge.agent.config.load_config` checks the configuration's *text*: every key known, every
value in range. That is not enough at a post: a configuration can name a certificate that was
never copied, a key readable by everyone, a trust folder left empty. The agent would then start
and fail later (the uplink never connects, every CBIC is referred) with nobody there to read
its log. :func:`check` looks at what the configuration names, as the agent's user, and returns
one :class:`Finding` per problem, each naming the key whose value is the problem::

    findings = check(load_config("/etc/borderlane/kiosk.toml", agent_version="1.0"))
    for finding in findings:
        print(finding)      # fatal: uplink.broker.key_file: /etc/borderlane/kiosk.key: ...

``borderlane-edge run --check`` prints them (exit 2 if any is fatal; the systemd unit runs it as
``ExecStartPre``); the agent runs the same checks at start, refuses to start on a fatal one and
reports the warnings in its heartbeats (component ``preflight``).

What is fatal and what is a warning: a file or folder the configuration names that is missing,
unreadable, unparsable, unsafe (a private key others may read) or inconsistent (a key that is
not the certificate's, a certificate issued to another device) is fatal: it is an installation
mistake that no waiting will cure. What depends on the moment is a warning, because the lane
must keep serving travellers offline whatever the uplink can do: a certificate expired, not yet
valid or close to expiry (the clock may be wrong; the lane decides and records, and the outbox
waits for re-enrollment), hardware not plugged in (the reader may come later), a disk below the
outbox reserve (the outbox still drains; new crossings are referred).
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from smartcard import scard

from edge.devices.card_config import ReaderFilter
from edge.devices.card_errors import error_for, pcsc_code
from edge.devices.mrz_reader import PortNotFoundError, resolve_port
from edge.screening.delta import load_trust
from edge.trust import TrustStoreError, load_csca_store, load_trust_list
from edge.ui.officers import OfficerDirectory, OfficerDirectoryError
from mqtt_schemas.health import component_entry
from mqtt_schemas.watchlist import WatchlistError

from .config import AgentConfig
from .encryption import EncryptionError, require_encrypted

__all__ = ["Finding", "certificate_validity", "check", "component"]

Level = Literal["fatal", "warning"]


@dataclass(frozen=True)
class Finding:
    """One problem: how bad, the configuration key whose value it concerns, and what is wrong."""

    level: Level
    key: str
    message: str

    @property
    def fatal(self) -> bool:
        return self.level == "fatal"

    def __str__(self) -> str:
        return f"{self.level}: {self.key}: {self.message}"


class _Found(Exception):
    """Stops one check at its first fatal problem (what follows would only repeat it)."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding


def _fatal(key: str, message: str) -> _Found:
    return _Found(Finding("fatal", key, message))


def check(config: AgentConfig, *, now: dt.datetime | None = None) -> list[Finding]:
    """Every problem with what *config* names, fatal ones first; empty: the kiosk can start.

    Runs as the calling user (the agent's, under systemd) and reads each file once; nothing is
    created or changed. *now* is for tests (certificate validity).
    """
    now = now or dt.datetime.now(dt.UTC)
    checks: list[Callable[[], Iterator[Finding]]] = [
        lambda: _uplink(config, now),
        lambda: _enrollment_ca(config),
        lambda: _issuers(config),
        lambda: _cscas(config),
        lambda: _watchlist_keys(config),
        lambda: _officers(config),
        lambda: _state(config),
        lambda: _mrz_port(config),
        lambda: _card_readers(config),
        lambda: _camera(config),
    ]
    findings = [finding for run in checks for finding in _collect(run)]
    return sorted(findings, key=lambda finding: not finding.fatal)  # stable: config order


def _collect(run: Callable[[], Iterator[Finding]]) -> list[Finding]:
    """What one check found: its warnings, and its first fatal problem, where it stopped."""
    found: list[Finding] = []
    try:
        for finding in run():
            found.append(finding)
    except _Found as stop:
        found.append(stop.finding)
    return found


def certificate_validity(config: AgentConfig, now: dt.datetime | None = None) -> str | None:
    """``certificate valid until 2026-12-31 (27.3 days left)``; None if it cannot be read."""
    try:
        certificate = x509.load_pem_x509_certificate(config.uplink.broker.cert_file.read_bytes())
    except (OSError, ValueError):
        return None
    end = certificate.not_valid_after_utc
    days = (end - (now or dt.datetime.now(dt.UTC))).total_seconds() / 86400
    return f"certificate valid until {end.date().isoformat()} ({days:.1f} days left)"


def component(findings: list[Finding], since: dt.datetime) -> dict[str, Any]:
    """The heartbeat's ``preflight`` component: ``ok``, or ``degraded`` with the warnings found
    at start (cut to the contract's detail length by :func:`component_entry`)."""
    warnings = [f"{f.key}: {f.message}" for f in findings if not f.fatal]
    if not warnings:
        return component_entry("ok", since)
    return component_entry("degraded", since, "at start: " + "; ".join(warnings))


# -- files --------------------------------------------------------------------------------------


def _readable_file(key: str, path: Path) -> bytes:
    """The bytes of *path*, or a fatal finding saying why the agent's user cannot have them."""
    if not path.exists():
        raise _fatal(key, f"{path}: no such file")
    if not path.is_file():
        raise _fatal(key, f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise _fatal(key, f"{path}: not readable by this user ({_user()})")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _fatal(key, f"{path}: {exc.strerror or exc}") from None


def _readable_directory(key: str, path: Path) -> None:
    if not path.exists():
        raise _fatal(key, f"{path}: no such directory")
    if not path.is_dir():
        raise _fatal(key, f"{path}: not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise _fatal(key, f"{path}: not readable by this user ({_user()})")


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def _certificates(key: str, path: Path) -> list[x509.Certificate]:
    data = _readable_file(key, path)
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise _fatal(key, f"{path}: not a PEM certificate") from None
    return found


def _validity(
    key: str, path: Path, certificate: x509.Certificate, now: dt.datetime, alarm: float
) -> Iterator[Finding]:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    days = (end - now).total_seconds() / 86400
    until = end.date().isoformat()
    if now < start:
        yield Finding(
            "warning",
            key,
            f"{path}: not valid before {start.isoformat()} (is the clock right?); "
            "the broker refuses it until then",
        )
    elif days <= 0:
        yield Finding(
            "warning",
            key,
            f"{path}: expired {until} ({-days:.1f} days ago); the kiosk records offline "
            "until it enrolls again (borderlane-edge enroll)",
        )
    elif days <= alarm:
        yield Finding("warning", key, f"{path}: expires {until} ({days:.1f} days left)")


# -- the checks, one per part of the configuration -------------------------------------------------


def _uplink(config: AgentConfig, now: dt.datetime) -> Iterator[Finding]:
    broker = config.uplink.broker
    yield from _collect(lambda: _ca_file("uplink.broker.ca_file", broker.ca_file, now))
    found = _collect(lambda: _certificate(config, now))
    yield from found
    usable = not any(
        finding.key == "uplink.broker.cert_file" and finding.fatal for finding in found
    )
    yield from _collect(
        lambda: _private_key("uplink.broker.key_file", broker.key_file, broker.cert_file, usable)
    )


def _certificate(config: AgentConfig, now: dt.datetime) -> Iterator[Finding]:
    key, path = "uplink.broker.cert_file", config.uplink.broker.cert_file
    certificate = _certificates(key, path)[0]
    yield from _validity(key, path, certificate, now, config.enrollment.alarm_days)
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else None
    if common_name != config.agent.device_id:
        raise _fatal(
            key,
            f"{path}: issued to {common_name or 'no common name'}, "
            f"not to agent.device_id {config.agent.device_id}",
        )


def _ca_file(key: str, path: Path, now: dt.datetime) -> Iterator[Finding]:
    for certificate in _certificates(key, path):
        if certificate.not_valid_after_utc <= now:
            until = certificate.not_valid_after_utc.date().isoformat()
            yield Finding("warning", key, f"{path}: a CA certificate expired {until}")


def _private_key(key: str, path: Path, cert_file: Path, compare: bool) -> Iterator[Finding]:
    """The kiosk's TLS key: private to its user, usable without a passphrase, and the key of
    the certificate (when that one could be read: *compare*)."""
    data = _readable_file(key, path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise _fatal(key, f"{path}: mode {mode:04o} lets others read the kiosk's key; chmod 600")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise _fatal(key, f"{path}: protected by a passphrase; the agent cannot use it") from None
    except ValueError:
        raise _fatal(key, f"{path}: not a PEM private key") from None
    if compare:
        certificate = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        if _spki(private.public_key()) != _spki(certificate.public_key()):
            raise _fatal(key, f"{path}: not the key of uplink.broker.cert_file ({cert_file})")
    yield from ()


def _spki(public: Any) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _enrollment_ca(config: AgentConfig) -> Iterator[Finding]:
    if config.enrollment.ca_file is not None:
        _certificates("enrollment.ca_file", config.enrollment.ca_file)
    yield from ()


def _issuers(config: AgentConfig) -> Iterator[Finding]:
    path = config.trust.issuers
    if path is None:
        return
    if not path.exists():
        raise _fatal("trust.issuers", f"{path}: no such file or directory")
    if path.is_dir():
        _readable_directory("trust.issuers", path)
    try:
        load_trust_list(path)
    except TrustStoreError as exc:
        raise _fatal("trust.issuers", str(exc)) from None
    yield from ()


def _cscas(config: AgentConfig) -> Iterator[Finding]:
    for index, path in enumerate(config.trust.csca):
        key = f"trust.csca[{index}]"
        if not path.exists():
            raise _fatal(key, f"{path}: no such file or directory")
        if path.is_dir():
            _readable_directory(key, path)
        else:
            _readable_file(key, path)
    try:  # together: a master list is accepted only when its signer's CSCA is given too
        load_csca_store(config.trust.csca)
    except TrustStoreError as exc:
        raise _fatal("trust.csca", str(exc)) from None
    yield from ()


def _watchlist_keys(config: AgentConfig) -> Iterator[Finding]:
    watchlist = config.watchlist
    for key, directory, what in (
        ("watchlist.trusted_keys", watchlist.trusted_keys, "signing key"),
        ("watchlist.trust_anchors", watchlist.trust_anchors, "anchor key"),
    ):
        if directory is None:
            continue
        yield from _collect(
            lambda key=key, directory=directory, what=what: _keys(key, directory, what)
        )


def _keys(key: str, directory: Path, what: str) -> Iterator[Finding]:
    _readable_directory(key, directory)
    try:
        keys = load_trust(directory=directory)
    except (WatchlistError, OSError) as exc:
        raise _fatal(key, f"{directory}: {exc}") from None
    if not keys:
        raise _fatal(key, f"{directory}: no {what} (<key id>.pub.pem) in this directory")
    yield from ()


def _officers(config: AgentConfig) -> Iterator[Finding]:
    path = config.ui.officers
    if path is None or not config.ui.enabled:
        return
    _readable_file("ui.officers", path)
    try:
        OfficerDirectory.load(path)
    except OfficerDirectoryError as exc:
        raise _fatal("ui.officers", str(exc)) from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        yield Finding(
            "warning", "ui.officers", f"{path}: mode {mode:04o}: PIN hashes others may read"
        )


def _state(config: AgentConfig) -> Iterator[Finding]:
    """The data directory (and the watchlist's, when elsewhere): writable, or creatable by the
    agent; encrypted when the configuration says so; free space above the outbox reserve."""
    data_dir = config.agent.data_dir
    directories = {"agent.data_dir": data_dir, "watchlist.db": config.watchlist.db.parent}
    for key, directory in directories.items():
        if key != "agent.data_dir" and directory == data_dir:
            continue
        existing = directory
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise _fatal(key, f"{existing}: not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            made = "" if existing == directory else f" (to create {directory})"
            raise _fatal(key, f"{existing}: not writable by this user ({_user()}){made}")
        if config.storage.encrypted:
            try:
                require_encrypted(directory)
            except EncryptionError as exc:
                raise _fatal("storage.encrypted", str(exc)) from None
    existing = data_dir
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    reserve = config.uplink.outbox.reserve_free_bytes
    if free < reserve:
        yield Finding(
            "warning",
            "agent.data_dir",
            f"{existing}: {_mib(free)} free, below the outbox reserve of {_mib(reserve)} "
            "(uplink.outbox.reserve_free_bytes): new crossings would be referred",
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _mrz_port(config: AgentConfig) -> Iterator[Finding]:
    if config.mrz_reader is None:
        return
    spec = config.mrz_reader.port
    try:
        device = resolve_port(spec)
    except PortNotFoundError as exc:
        yield Finding("warning", "mrz_reader.port", f"{exc.strerror}: reader not plugged in?")
        return
    if not os.path.exists(device):
        yield Finding("warning", "mrz_reader.port", f"{device}: no such device (not plugged in?)")
    elif not os.access(device, os.R_OK | os.W_OK):
        yield Finding(
            "warning",
            "mrz_reader.port",
            f"{device}: not readable and writable by this user ({_user()}; group dialout?)",
        )


def _card_readers(config: AgentConfig) -> Iterator[Finding]:
    """The PC/SC readers pcscd knows, against ``card_reader.readers``: a warning when none
    matches (hardware absent, pcscd not running), never fatal: a reader may be plugged later."""
    if config.card_reader is None:
        return
    wanted = ReaderFilter(config.card_reader.readers)
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if pcsc_code(hresult) != pcsc_code(scard.SCARD_S_SUCCESS):
        problem = error_for(hresult, "connecting to pcscd")
        yield Finding(
            "warning", "card_reader.readers", f"{problem}: cannot see a reader matching {wanted}"
        )
        return
    try:
        hresult, names = scard.SCardListReaders(context, [])
        names = list(names) if pcsc_code(hresult) == pcsc_code(scard.SCARD_S_SUCCESS) else []
    finally:
        scard.SCardReleaseContext(context)
    if not any(wanted(name) for name in names):
        seen = ", ".join(names) if names else "none"
        yield Finding(
            "warning", "card_reader.readers", f"no reader matches {wanted} (readers seen: {seen})"
        )


def _camera(config: AgentConfig) -> Iterator[Finding]:
    """A USB camera's device node (a warning: it may be plugged later), a virtual camera's
    images (fatal: a file the configuration names). The Pi camera is found by libcamera."""
    camera = config.camera
    if camera is None:
        return
    if camera.backend == "v4l2":
        if not os.path.exists(camera.device):
            yield Finding(
                "warning", "camera.device", f"{camera.device}: no such device (not plugged in?)"
            )
        elif not os.access(camera.device, os.R_OK | os.W_OK):
            yield Finding(
                "warning",
                "camera.device",
                f"{camera.device}: not readable and writable by {_user()} (group video?)",
            )
    elif camera.backend == "virtual" and camera.source is not None and not camera.source.exists():
        raise _fatal("camera.source", f"{camera.source}: no such file or directory")

"""The kiosk's configuration file (``kiosk.toml``): read once at start, checked whole.

One TOML file describes one kiosk. Every table maps onto the configuration class of the part
it configures, and every part is strict: an unknown key or a bad value stops the agent at
start with :class:`AgentConfigError` naming the key's full path (``uplink.broker.port``), so a
misspelt setting never falls back to a default unnoticed. Relative paths are relative to the
file's own directory, so a configuration directory can be moved as a whole::

    [agent]
    device_id = "kiosk-bz-01"         # also the certificate's common name and MQTT user
    data_dir = "/var/lib/borderlane"  # kiosk.db (outbox, lane state, reviews), watchlist.db

    [lane]                            # edge.lane.LaneConfig
    site = "bz-santa-elena"
    lane = "lane-1"
    direction = "entry"

    [trust]
    issuers = "/etc/borderlane/cbic-issuers.json"   # CBIC issuer keys (edge.trust)
    csca = ["/etc/borderlane/csca"]                  # CSCA certificates / master lists

    [watchlist]
    trusted_keys = "/etc/borderlane/watchlist-keys"  # <key_id>.pub.pem files
    trust_anchors = "/etc/borderlane/watchlist-anchors"  # optional: keys with a lifecycle

    [card_reader]                     # edge.devices.card_config.CardReaderConfig
    readers = ["OMNIKEY"]

    [mrz_reader]                      # edge.devices.mrz_reader.MrzReaderConfig; omit if none
    port = "/dev/serial/by-id/usb-*MRZ*"

    [camera]                          # edge.devices.camera_config.CameraConfig; omit if none
    backend = "v4l2"                  # picamera2 (Pi camera), v4l2 (USB webcam) or virtual
    device = "/dev/video0"

    [uplink.broker]                   # edge.uplink.UplinkConfig (device id comes from [agent])
    host = "mqtt.borderlane.example"
    ca_file = "/etc/borderlane/ca.crt"
    cert_file = "/etc/borderlane/kiosk.crt"
    key_file = "/etc/borderlane/kiosk.key"

    [ui]
    port = 8080

    [health]
    interval_s = 30

    [storage]                         # optional
    encrypted = true                  # refuse to start unless data_dir is encrypted, unlocked

    [enrollment]                      # optional: renew the certificate before it runs out
    url = "https://console.borderlane.example:8443"   # the console's enrollment endpoint
    ca_file = "/etc/borderlane/service-ca.crt"        # how that endpoint is recognised
    renew_at = 0.667                  # share of the certificate's lifetime
    alarm_days = 7                    # health says "down" this close to expiry

:func:`load_config` is the one entry point; ``borderlane-edge run --check`` runs it alone.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge.devices.camera_config import CameraConfig, CameraConfigError
from edge.devices.card_config import CardReaderConfig
from edge.devices.mrz_reader import MrzReaderConfig, MrzReaderConfigError
from edge.lane.config import LaneConfig, LaneConfigError
from edge.uplink.config import UplinkConfig
from edge.uplink.errors import ConfigError
from mqtt_schemas.errors import TopicError
from mqtt_schemas.topics import check_device_id

from .certificates import RenewalSettings

__all__ = [
    "AgentConfig",
    "AgentConfigError",
    "AgentSettings",
    "HealthSettings",
    "TrustSettings",
    "UiSettings",
    "WatchlistSettings",
    "load_config",
]


class AgentConfigError(ValueError):
    """The configuration cannot be used; ``path`` names the key (empty for the whole file)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


def _table(data: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise AgentConfigError(path, f"expected a table, got {type(data).__name__}")
    return data


def _plain(data: Mapping[str, Any]) -> None:
    """Refuse what no setting holds and what the messages below could not show: a key with a
    control character (it would break the one-line message) or an integer beyond 64 bits (a
    hexadecimal one has no digit limit, and ``repr`` of it would raise ValueError)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping):
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if not str(key).isprintable():
                    shown = where.encode("unicode_escape").decode("ascii")
                    raise AgentConfigError(shown, "a key with a control character")
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((path, item) for item in value)
        elif isinstance(value, int) and value.bit_length() > 64:
            raise AgentConfigError(path, "an integer beyond 64 bits")


def _only(data: Mapping[str, Any], known: set[str], path: str) -> None:
    for key in data:
        if key not in known:
            raise AgentConfigError(
                f"{path}.{key}" if path else key,
                f"unknown key (known: {', '.join(sorted(known))})",
            )


def _number(data: Mapping[str, Any], key: str, path: str, default: float, low: float, high: float):
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise AgentConfigError(f"{path}.{key}", f"a number in {low:g}..{high:g}, got {value!r}")
    return float(value)


def _path(base: Path, value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise AgentConfigError(key, f"a file path, got {value!r}")
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


@dataclass(frozen=True)
class AgentSettings:
    device_id: str
    data_dir: Path
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    restart_initial_s: float = 1.0
    """A part that fails is restarted after this long, doubling per failure up to the max."""
    restart_max_s: float = 60.0

    @property
    def kiosk_db(self) -> Path:
        """The kiosk database: outbox, lane state, officers' review queue, command results."""
        return self.data_dir / "kiosk.db"


@dataclass(frozen=True)
class TrustSettings:
    issuers: Path | None = None
    """The CBIC issuer trust list; without it every CBIC fails its issuer check (refer)."""
    csca: tuple[Path, ...] = ()
    """CSCA certificates, directories of them, or ICAO master lists, for Passive Authentication."""


@dataclass(frozen=True)
class WatchlistSettings:
    db: Path
    trusted_keys: Path | None = None
    """Directory of ``<key_id>.pub.pem`` Ed25519 keys that may sign watchlist deltas."""
    trust_anchors: Path | None = None
    """Directory of ``<anchor_id>.pub.pem`` keys whose trust updates say which keys sign which
    versions (:mod:`mqtt_schemas.trust`); without it the keys above serve every version."""


@dataclass(frozen=True)
class UiSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    language: Literal["en", "es"] = "en"
    officers: Path | None = None
    """The officer directory (ids and PIN hashes) for the review pages."""
    hosts: tuple[str, ...] = ()
    """Host names, besides loopback's, that the kiosk's browser uses for the pages (a request
    for any other name is refused: DNS rebinding)."""


@dataclass(frozen=True)
class HealthSettings:
    interval_s: float = 30.0


@dataclass(frozen=True)
class StorageSettings:
    encrypted: bool = False
    """True: the agent starts only if ``data_dir`` (and the watchlist's directory) is an
    fscrypt-encrypted directory whose key is in the kernel (``edge.agent.encryption``), so a
    kiosk whose image skipped the encryption, or whose unlock failed, writes no traveller's
    data in plain text."""


@dataclass(frozen=True)
class AgentConfig:
    """The whole kiosk configuration, every part already validated."""

    path: Path
    agent: AgentSettings
    lane: LaneConfig
    uplink: UplinkConfig
    card_reader: CardReaderConfig | None
    """None: this kiosk has no card reader (``[card_reader] enabled = false``)."""
    mrz_reader: MrzReaderConfig | None
    """None: no ``[mrz_reader]`` table, the kiosk has no MRZ reader."""
    watchlist: WatchlistSettings
    trust: TrustSettings = field(default_factory=TrustSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    enrollment: RenewalSettings = field(default_factory=RenewalSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    camera: CameraConfig | None = None
    """None: no ``[camera]`` table, or ``enabled = false``: the kiosk takes no pictures."""


_SECTIONS = {
    "agent",
    "lane",
    "uplink",
    "card_reader",
    "mrz_reader",
    "camera",
    "trust",
    "watchlist",
    "ui",
    "health",
    "enrollment",
    "storage",
}


def load_config(path: Path | str, *, agent_version: str) -> AgentConfig:
    """Read and check ``kiosk.toml``; raise :class:`AgentConfigError` naming the bad key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AgentConfigError("", f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AgentConfigError("", f"{path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError("", f"{path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into arrays and inline tables
        raise AgentConfigError("", f"{path} is not valid TOML: nested too deeply") from None
    except ValueError:  # int() refuses a decimal integer of that many digits
        limit = sys.get_int_max_str_digits()
        raise AgentConfigError("", f"{path}: an integer of more than {limit} digits") from None
    return parse_config(data, base=path.resolve().parent, path=path, agent_version=agent_version)


def parse_config(
    data: Mapping[str, Any], *, base: Path, path: Path, agent_version: str
) -> AgentConfig:
    """:func:`load_config` for an already parsed document (relative paths against *base*)."""
    _plain(data)
    _only(data, _SECTIONS, "")
    for required in ("agent", "lane", "uplink"):
        if required not in data:
            raise AgentConfigError(required, "required table is missing")
    agent = _agent(_table(data["agent"], "agent"), base)
    return AgentConfig(
        path=path,
        agent=agent,
        lane=_lane(_table(data["lane"], "lane")),
        uplink=_uplink(_table(data["uplink"], "uplink"), agent, base, agent_version),
        card_reader=_card_reader(_table(data.get("card_reader", {}), "card_reader")),
        mrz_reader=_mrz_reader(data.get("mrz_reader")),
        trust=_trust(_table(data.get("trust", {}), "trust"), base),
        watchlist=_watchlist(_table(data.get("watchlist", {}), "watchlist"), agent, base),
        ui=_ui(_table(data.get("ui", {}), "ui"), base),
        health=_health(_table(data.get("health", {}), "health")),
        enrollment=_enrollment(_table(data.get("enrollment", {}), "enrollment"), base),
        storage=_storage(_table(data.get("storage", {}), "storage")),
        camera=_camera(data.get("camera"), base),
    )


def _agent(data: Mapping[str, Any], base: Path) -> AgentSettings:
    _only(data, {f.name for f in dataclasses.fields(AgentSettings)}, "agent")
    for required in ("device_id", "data_dir"):
        if required not in data:
            raise AgentConfigError(f"agent.{required}", "required key is missing")
    try:
        device_id = check_device_id(data["device_id"])
    except TopicError as exc:
        raise AgentConfigError("agent.device_id", str(exc)) from None
    level = data.get("log_level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise AgentConfigError("agent.log_level", f"debug, info, warning or error, got {level!r}")
    initial = _number(data, "restart_initial_s", "agent", 1, 0.01, 600)
    maximum = _number(data, "restart_max_s", "agent", 60, initial, 3600)
    return AgentSettings(
        device_id, _path(base, data["data_dir"], "agent.data_dir"), level, initial, maximum
    )


def _lane(data: Mapping[str, Any]) -> LaneConfig:
    try:
        return LaneConfig.from_dict(data)
    except LaneConfigError as exc:
        raise AgentConfigError(exc.path, exc.problem) from None


def _uplink(
    data: Mapping[str, Any], agent: AgentSettings, base: Path, agent_version: str
) -> UplinkConfig:
    for owned in ("device_id", "agent_version"):
        if owned in data:
            where = "agent.device_id" if owned == "device_id" else "the installed agent"
            raise AgentConfigError(f"uplink.{owned}", f"not set here: it comes from {where}")
    values = dict(data)
    broker = values.get("broker")
    if isinstance(broker, Mapping):  # TLS files relative to the configuration
        values["broker"] = {
            key: str(_path(base, value, f"uplink.broker.{key}")) if key.endswith("_file") else value
            for key, value in broker.items()
        }
    values.update(device_id=agent.device_id, agent_version=agent_version)
    try:
        return UplinkConfig.from_dict(values, "uplink")
    except ConfigError as exc:
        raise AgentConfigError(exc.path, exc.problem) from None


def _strict(
    data: Mapping[str, Any], kind: type, path: str, build: Callable[[dict[str, Any]], Any]
) -> Any:
    _only(data, {f.name for f in dataclasses.fields(kind)}, path)
    try:
        return build(dict(data))
    except (MrzReaderConfigError, CameraConfigError) as exc:
        raise AgentConfigError(
            f"{path}.{exc.field}", str(exc).removeprefix(f"{exc.field}: ")
        ) from None
    except (TypeError, ValueError) as exc:
        raise AgentConfigError(path, str(exc)) from None


def _card_reader(data: Mapping[str, Any]) -> CardReaderConfig | None:
    values = dict(data)
    enabled = values.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise AgentConfigError("card_reader.enabled", f"true or false, got {enabled!r}")
    config = _strict(values, CardReaderConfig, "card_reader", CardReaderConfig.from_mapping)
    return config if enabled else None


def _mrz_reader(data: Any) -> MrzReaderConfig | None:
    if data is None:
        return None
    values = _table(data, "mrz_reader")  # prefix/suffix as hex text: the driver's from_dict
    return _strict(values, MrzReaderConfig, "mrz_reader", MrzReaderConfig.from_dict)


def _camera(data: Any, base: Path) -> CameraConfig | None:
    if data is None:
        return None
    values = dict(_table(data, "camera"))
    enabled = values.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise AgentConfigError("camera.enabled", f"true or false, got {enabled!r}")
    if not enabled and "backend" not in values:  # switched off: nothing else to check
        _only(values, {f.name for f in dataclasses.fields(CameraConfig)}, "camera")
        return None
    if "source" in values:  # the virtual camera's images, relative to this file
        values["source"] = str(_path(base, values["source"], "camera.source"))
    config = _strict(values, CameraConfig, "camera", CameraConfig.from_dict)
    return config if enabled else None


def _trust(data: Mapping[str, Any], base: Path) -> TrustSettings:
    _only(data, {"issuers", "csca"}, "trust")
    issuers = data.get("issuers")
    csca = data.get("csca", [])
    if isinstance(csca, str):
        csca = [csca]
    if not isinstance(csca, list):
        raise AgentConfigError("trust.csca", f"a list of paths, got {csca!r}")
    return TrustSettings(
        _path(base, issuers, "trust.issuers") if issuers is not None else None,
        tuple(_path(base, item, f"trust.csca[{i}]") for i, item in enumerate(csca)),
    )


def _watchlist(data: Mapping[str, Any], agent: AgentSettings, base: Path) -> WatchlistSettings:
    _only(data, {"db", "trusted_keys", "trust_anchors"}, "watchlist")
    db = data.get("db")
    keys = data.get("trusted_keys")
    anchors = data.get("trust_anchors")
    return WatchlistSettings(
        _path(base, db, "watchlist.db") if db is not None else agent.data_dir / "watchlist.db",
        _path(base, keys, "watchlist.trusted_keys") if keys is not None else None,
        _path(base, anchors, "watchlist.trust_anchors") if anchors is not None else None,
    )


def _ui(data: Mapping[str, Any], base: Path) -> UiSettings:
    _only(data, {f.name for f in dataclasses.fields(UiSettings)}, "ui")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise AgentConfigError("ui.enabled", f"true or false, got {enabled!r}")
    host = data.get("host", "127.0.0.1")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise AgentConfigError(
            "ui.host", f"the kiosk pages are served on loopback only, got {host!r}"
        )
    port = data.get("port", 8080)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise AgentConfigError("ui.port", f"a TCP port (0 picks a free one), got {port!r}")
    language = data.get("language", "en")
    if language not in ("en", "es"):
        raise AgentConfigError("ui.language", f"en or es, got {language!r}")
    officers = data.get("officers")
    hosts = data.get("hosts", [])
    if not isinstance(hosts, list) or not all(
        isinstance(h, str) and _HOST_NAME.fullmatch(h) for h in hosts
    ):
        raise AgentConfigError("ui.hosts", f"a list of host names, got {hosts!r}")
    return UiSettings(
        enabled,
        host,
        port,
        language,
        _path(base, officers, "ui.officers") if officers is not None else None,
        tuple(hosts),
    )


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _storage(data: Mapping[str, Any]) -> StorageSettings:
    _only(data, {"encrypted"}, "storage")
    encrypted = data.get("encrypted", False)
    if not isinstance(encrypted, bool):
        raise AgentConfigError("storage.encrypted", f"true or false, got {encrypted!r}")
    return StorageSettings(encrypted)


def _enrollment(data: Mapping[str, Any], base: Path) -> RenewalSettings:
    _only(data, {"url", "ca_file", "renew_at", "alarm_days", "retry_s"}, "enrollment")
    url = data.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
        raise AgentConfigError("enrollment.url", "an https:// address of the console")
    ca_file = data.get("ca_file")
    if (url is None) != (ca_file is None):
        raise AgentConfigError("enrollment", "url and ca_file go together")
    return RenewalSettings(
        url=url,
        ca_file=None if ca_file is None else _path(base, ca_file, "enrollment.ca_file"),
        renew_at=_number(data, "renew_at", "enrollment", 2 / 3, 0.5, 0.95),
        alarm_days=_number(data, "alarm_days", "enrollment", 7, 0, 365),
        retry_s=_number(data, "retry_s", "enrollment", 3600, 10, 86400),
    )


def _health(data: Mapping[str, Any]) -> HealthSettings:
    _only(data, {"interval_s"}, "health")
    return HealthSettings(_number(data, "interval_s", "health", 30, 1, 3600))

"""The console web app's JSON endpoints, on a database filled through the store: each test
runs on SQLite and on PostgreSQL (``console_db``). The API answers only a user the policy
allows: these tests call it with an admin's API token (admins see the fleet and statistics);
who else may is tested at the end."""

from __future__ import annotations

import json

import pytest

from console.accounts import Accounts
from console.records import classify
from console.store import Store, open_database
from console.web import create_app
from harness.console import availability, crossing, health
from harness.console_web import FAST_HASHER, TokenClient, role_tokens
from mqtt_schemas import topics
from provisioning.broker import free_port

NOW = "2026-11-24T10:00:00.000Z"


def put(store: Store, device_id: str, channel: str, payload: dict) -> None:
    topic = topics.device_topic(device_id, channel)
    store.apply([classify(topic, json.dumps(payload).encode())], "console-1", NOW)


def make_app(console_db, tmp_path):
    return create_app(
        {"DATABASE": console_db, "INSTANCE_PATH": str(tmp_path / "instance"), "TESTING": True}
    )


@pytest.fixture
def tokens(console_db):
    """An API token per role (the accounts of harness.console_web)."""
    return role_tokens(console_db)


@pytest.fixture
def app(console_db, tmp_path, tokens):
    store = Store.open(console_db)
    put(store, "kiosk-w1", "availability", availability("kiosk-w1", "online", 4, 1))
    put(store, "kiosk-w1", "health", health("kiosk-w1", 4, 2))
    put(store, "kiosk-w2", "availability", availability("kiosk-w2", "offline", 9, 1, "shutdown"))
    for seq, (site, day, outcome) in enumerate(
        [
            ("bz-santa-elena", "2026-11-23", "pass"),
            ("bz-santa-elena", "2026-11-24", "pass"),
            ("bz-santa-elena", "2026-11-24", "pass"),
            ("bz-santa-elena", "2026-11-24", "refer"),
            ("bz-benque-viejo", "2026-11-24", "pass"),
        ],
        start=10,
    ):
        record = crossing("kiosk-w1", seq, site=site, time=f"{day}T12:00:{seq:02d}Z")
        record["decision"] = (
            {"outcome": "refer", "reasons": ["watchlist-hit"]}
            if outcome == "refer"
            else {"outcome": "pass", "reasons": []}
        )
        put(store, "kiosk-w1", "crossings", record)
    store.close()
    return make_app(console_db, tmp_path)


@pytest.fixture
def client(app, tokens):
    return TokenClient(app, tokens["admin"])


def test_the_fleet_lists_every_kiosk_with_availability_and_last_health(client):
    response = client.get("/api/devices")
    assert response.status_code == 200
    fleet = {d["device_id"]: d for d in response.get_json()["devices"]}
    assert list(fleet) == ["kiosk-w1", "kiosk-w2"]
    assert (fleet["kiosk-w1"]["state"], fleet["kiosk-w1"]["session"]) == ("online", 4)
    assert fleet["kiosk-w1"]["health"]["seq"] == 2
    assert fleet["kiosk-w1"]["last_seen_at"] == NOW
    assert (fleet["kiosk-w2"]["state"], fleet["kiosk-w2"]["offline_reason"]) == (
        "offline",
        "shutdown",
    )
    assert fleet["kiosk-w2"]["health"] is None


def test_a_device_detail_adds_its_records_and_availability_history(client):
    detail = client.get("/api/devices/kiosk-w1").get_json()
    assert detail["records"]["crossings"] == {
        "count": 5,
        "last_seq": 14,
        "last_time": "2026-11-24T12:00:14Z",
    }
    assert detail["records"]["hits"]["count"] == 0
    assert detail["quarantined"] == 0
    assert [(e["state"], e["session"], e["applied"]) for e in detail["availability_log"]] == [
        ("online", 4, 1)
    ]


def test_unknown_and_malformed_device_ids_are_json_errors(client):
    missing = client.get("/api/devices/kiosk-none")
    assert missing.status_code == 404 and "kiosk-none" in missing.get_json()["error"]
    bad = client.get("/api/devices/-bad")
    assert bad.status_code == 400 and "must be" in bad.get_json()["error"]


def test_crossing_counts_per_site_day_and_outcome(client):
    body = client.get("/api/crossings/counts").get_json()
    assert body["total"] == 5
    assert body["counts"] == [
        {"site": "bz-benque-viejo", "day": "2026-11-24", "outcome": "pass", "count": 1},
        {"site": "bz-santa-elena", "day": "2026-11-23", "outcome": "pass", "count": 1},
        {"site": "bz-santa-elena", "day": "2026-11-24", "outcome": "pass", "count": 2},
        {"site": "bz-santa-elena", "day": "2026-11-24", "outcome": "refer", "count": 1},
    ]
    filtered = client.get(
        "/api/crossings/counts?site=bz-santa-elena&since=2026-11-24&until=2026-11-24"
    ).get_json()
    assert [(c["outcome"], c["count"]) for c in filtered["counts"]] == [("pass", 2), ("refer", 1)]


@pytest.mark.parametrize(
    "query", ["since=yesterday", "until=2026-13-01", "since=2026-11-25&until=2026-11-24"]
)
def test_bad_date_bounds_are_refused(client, query):
    response = client.get(f"/api/crossings/counts?{query}")
    assert response.status_code == 400 and response.get_json()["error"]


def test_a_missing_database_is_a_503_and_a_missing_setting_an_error(tmp_path):
    """SQLite only: a missing file is SQLite's "no console database". The token is looked up
    in the database, so the request meets the missing database before anything else."""
    app = create_app({"DATABASE": str(tmp_path / "none.db"), "INSTANCE_PATH": str(tmp_path)})
    response = TokenClient(app, "blc_whatever").get("/api/devices")
    assert response.status_code == 503 and "no console database" in response.get_json()["error"]
    assert not (tmp_path / "none.db").exists()  # the web never creates a console database
    with pytest.raises(ValueError, match="DATABASE"):
        create_app({})


def test_an_unreachable_postgresql_is_a_503_naming_it_without_its_password(tmp_path):
    app = create_app(
        {
            "DATABASE": f"postgresql://console:s3cret@127.0.0.1:{free_port()}/console",
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    response = TokenClient(app, "blc_whatever").get("/api/devices")
    error = response.get_json()["error"]
    assert response.status_code == 503 and "\n" not in error
    assert error.startswith("cannot open the console database postgresql+psycopg://console:***@")
    assert "s3cret" not in error


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/devices", {"admin", "technician"}),
        ("/api/devices/kiosk-w1", {"admin", "technician"}),
        ("/api/crossings/counts", {"admin", "analyst", "supervisor"}),
    ],
)
def test_the_api_answers_only_the_roles_the_policy_allows(app, tokens, path, allowed):
    """fleet.view for the devices, statistics.view for the counts; 403 for every other role,
    401 without a token or with a wrong one, JSON in every case."""
    for role, token in tokens.items():
        response = TokenClient(app, token).get(path)
        assert response.status_code == (200 if role in allowed else 403), role
        assert response.is_json
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 401 and "API token" in anonymous.get_json()["error"]
    forged = TokenClient(app, "blc_" + "x" * 43).get(path)
    assert forged.status_code == 401 and forged.get_json()["error"]


def test_a_revoked_token_or_a_disabled_user_is_refused_at_once(app, console_db, tokens):
    engine = open_database(console_db)
    accounts = Accounts(engine, hasher=FAST_HASHER)
    try:
        assert TokenClient(app, tokens["technician"]).get("/api/devices").status_code == 200
        accounts.disable("technician")
        assert TokenClient(app, tokens["technician"]).get("/api/devices").status_code == 401
        assert TokenClient(app, tokens["admin"]).get("/api/devices").status_code == 200
        accounts.revoke_token("admin")
        assert TokenClient(app, tokens["admin"]).get("/api/devices").status_code == 401
    finally:
        engine.dispose()

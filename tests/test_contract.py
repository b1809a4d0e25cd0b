"""The wire contract holds: schemas, examples, topics.md and the topic API agree with CHANNELS.

Each ``examples/<name>.json`` is the executable specification of one payload: every ``valid``
payload validates, and every ``invalid`` payload is refused at exactly the field its ``path``
names, so that logs and quarantine records point at the right place.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mqtt_schemas import PayloadError, TopicError, identifiers, names, topics, validate

PACKAGE = resources.files("mqtt_schemas")
SCHEMA_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[0-9]+)\.json$")
PAYLOAD_SCHEMAS = sorted({channel.schema for channel in topics.CHANNELS})


def load_json(*parts: str) -> Any:
    return json.loads(PACKAGE.joinpath(*parts).read_text("utf-8"))


def example_files() -> list[str]:
    return sorted(e.name[: -len(".json")] for e in PACKAGE.joinpath("examples").iterdir())


def schema_files() -> list[str]:
    return sorted(e.name for e in PACKAGE.joinpath("schemas").iterdir() if e.name.endswith(".json"))


def cases(kind: str) -> list[Any]:
    params = []
    for name in example_files():
        for case in load_json("examples", f"{name}.json")[kind]:
            args = (
                (name, case["payload"])
                if kind == "valid"
                else (name, case["path"], case["payload"])
            )
            params.append(pytest.param(*args, id=f"{name}: {case['why']}"))
    return params


def template_topic(channel: topics.Channel) -> str:
    """The topic as topics.md writes it: ``borderlane/v1/devices/<device_id>/crossings``."""
    if channel.scope == "fleet":
        return f"{topics.FLEET}/{channel.name}"
    return f"{topics.DEVICES}/<device_id>/{channel.name}"


def example_payload(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_json("examples", f"{name}.json")["valid"][0]["payload"])


# ---------------------------------------------------------------------------------------------
# Examples


@pytest.mark.parametrize(("name", "payload"), cases("valid"))
def test_valid_example_validates(name, payload):
    validate(name, payload)


@pytest.mark.parametrize(("name", "path", "payload"), cases("invalid"))
def test_invalid_example_is_refused_at_the_field_it_names(name, path, payload):
    with pytest.raises(PayloadError) as refused:
        validate(name, payload)
    assert refused.value.path == path, str(refused.value)


@pytest.mark.parametrize("name", PAYLOAD_SCHEMAS)
def test_every_channel_payload_has_a_schema_and_enough_examples(name):
    assert f"{name}.v1.json" in schema_files()
    assert name in names()
    examples = load_json("examples", f"{name}.json")
    assert len(examples["valid"]) >= 2, "at least two valid payloads"
    assert len(examples["invalid"]) >= 4, "at least four invalid payloads"


@pytest.mark.parametrize("name", example_files())
def test_every_examples_file_belongs_to_a_schema_and_states_each_case_once(name):
    assert name in names()
    examples = load_json("examples", f"{name}.json")
    assert set(examples) == {"valid", "invalid"}
    whys = [case["why"] for case in examples["valid"] + examples["invalid"]]
    assert len(whys) == len(set(whys)), "each example tells a different story"


def test_every_schema_is_used_by_a_channel():
    assert set(names()) == set(PAYLOAD_SCHEMAS)


# ---------------------------------------------------------------------------------------------
# Schemas


@pytest.mark.parametrize("file_name", schema_files())
def test_schema_file_is_valid_draft_2020_12_with_an_id_matching_its_name(file_name):
    document = load_json("schemas", file_name)
    jsonschema_rs.meta.validate(document)  # raises if not a valid draft 2020-12 schema
    match = SCHEMA_FILE.match(file_name)
    assert match, f"{file_name} is not named <name>.v<version>.json"
    assert document["$id"] == f"urn:borderlane:schema:{match['name']}:{match['version']}"


@pytest.mark.parametrize("name", PAYLOAD_SCHEMAS)
def test_payload_schema_extends_the_envelope_and_is_closed(name):
    document = load_json("schemas", f"{name}.v1.json")
    assert document["$ref"] == "urn:borderlane:schema:defs:1#/$defs/envelope"
    assert document["properties"]["schema"] == {"const": f"{name}@1"}
    assert document["unevaluatedProperties"] is False
    assert document.get("description"), "a schema says what the payload is for"


def test_a_payload_naming_another_schema_is_refused_at_schema():
    payload = example_payload("crossing")
    with pytest.raises(PayloadError) as refused:
        validate("screening-hit", payload)
    assert refused.value.path == "/schema"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_id", "kiosk-bz-se-01\n"),
        ("time", "2026-11-24T07:12:45Z\n"),
        ("site", "bz-santa-elena\n"),
    ],
)
def test_a_trailing_newline_does_not_slip_past_a_pattern(field, value):
    # JSON Schema patterns are ECMA-262, where $ is the end of the input; Python's $ would also
    # match before a final newline.
    payload = example_payload("crossing")
    payload[field] = value
    with pytest.raises(PayloadError) as refused:
        validate("crossing", payload)
    assert refused.value.path == f"/{field}"


def test_a_watchlist_chunk_holds_at_most_5000_changes():
    chunk = example_payload("watchlist-delta-chunk")
    remove = {"op": "remove", "kind": "person", "entry_id": "nw-2019-00077"}
    chunk["changes"] = [remove] * 5000
    validate("watchlist-delta-chunk", chunk)
    chunk["changes"].append(remove)
    with pytest.raises(PayloadError) as refused:
        validate("watchlist-delta-chunk", chunk)
    assert refused.value.path == "/changes"


def test_a_health_report_accepts_a_component_it_has_never_heard_of():
    health = example_payload("health")
    health["components"]["fingerprint-reader"] = {
        "state": "starting",
        "since": "2026-11-24T09:29:58Z",
    }
    validate("health", health)


# ---------------------------------------------------------------------------------------------
# topics.md


TOPICS_MD = PACKAGE.joinpath("topics.md").read_text("utf-8")
ACL_FILE = re.search(r"### Broker ACLs.*?```\n(.*?)```", TOPICS_MD, re.DOTALL)[1].splitlines()


def acl_rule(channel: topics.Channel) -> str:
    """The Mosquitto ACL line that confines *channel*, derived from who publishes it."""
    if channel.scope == "fleet":
        return "pattern read borderlane/v1/fleet/#"
    access = "write" if channel.publisher == "kiosk" else "read"
    return f"pattern {access} borderlane/v1/devices/%u/{channel.name}"


@pytest.mark.parametrize("channel", topics.CHANNELS, ids=template_topic)
def test_topics_md_documents_every_channel_with_its_acl_rule(channel):
    rows = [
        line
        for line in TOPICS_MD.splitlines()
        if line.startswith(f"| `{template_topic(channel)}` |")
    ]
    assert len(rows) == 1, "one table row per topic"
    assert f"`{acl_rule(channel)}`" in rows[0]
    assert acl_rule(channel) in ACL_FILE


def test_the_documented_acl_file_grants_nothing_beyond_the_channels():
    console = ["user console-1", "topic readwrite borderlane/v1/#"]
    expected = {acl_rule(channel) for channel in topics.CHANNELS} | set(console)
    rules = [line for line in ACL_FILE if line and not line.startswith("#")]
    assert set(rules) == expected
    assert rules[-2:] == console, "the console's user section comes last"


def test_topics_md_documents_no_topic_that_is_not_a_channel():
    documented = {
        ("device", name)
        for name in re.findall(r"borderlane/v1/devices/<device_id>/([a-z/-]+)", TOPICS_MD)
    } | {("fleet", name) for name in re.findall(r"borderlane/v1/fleet/([a-z][a-z/-]*)", TOPICS_MD)}
    known = {(channel.scope, channel.name) for channel in topics.CHANNELS}
    assert documented <= known, f"topics.md documents unknown topics: {documented - known}"


# ---------------------------------------------------------------------------------------------
# Topic API


def test_a_device_topic_is_root_device_id_and_channel():
    assert topics.device_topic("kiosk-bz-se-01", "crossings") == (
        "borderlane/v1/devices/kiosk-bz-se-01/crossings"
    )
    assert topics.device_topic("kiosk-bz-se-01", "watchlist/catchup") == (
        "borderlane/v1/devices/kiosk-bz-se-01/watchlist/catchup"
    )


def test_a_fleet_topic_has_no_device_id():
    assert topics.fleet_topic("watchlist/manifest") == "borderlane/v1/fleet/watchlist/manifest"


def test_a_device_filter_covers_every_device_or_one():
    assert topics.device_filter("health") == "borderlane/v1/devices/+/health"
    assert (
        topics.device_filter("health", "kiosk-bz-bv-03")
        == "borderlane/v1/devices/kiosk-bz-bv-03/health"
    )


@pytest.mark.parametrize("channel", topics.CHANNELS, ids=template_topic)
def test_every_channel_topic_parses_back_to_its_channel_and_device(channel):
    if channel.scope == "device":
        route = topics.parse(topics.device_topic("kiosk-bz-se-01", channel.name))
        assert route == topics.Route(channel, "kiosk-bz-se-01")
    else:
        assert topics.parse(topics.fleet_topic(channel.name)) == topics.Route(channel, None)


BAD_DEVICE_IDS = [
    pytest.param("kiosk+1", "'+' (a wildcard)", id="plus"),
    pytest.param("kiosk#1", "'#' (a wildcard)", id="hash"),
    pytest.param("bz/kiosk-1", "'/' (a level separator)", id="slash"),
    pytest.param("kiosk\n1", "control character", id="newline"),
    pytest.param("kiosk\x00", "control character", id="nul"),
    pytest.param("kiosk\x7f", "control character", id="del"),
    pytest.param("", "non-empty string", id="empty"),
    pytest.param(None, "non-empty string", id="not-a-string"),
    pytest.param("k" * 65, "1-64 characters", id="too-long"),
    pytest.param("-kiosk", "starting with a letter or digit", id="leading-dash"),
    pytest.param("kiosk 1", "A-Z a-z 0-9 . _ -", id="space"),
    pytest.param("kiosk-ñ", "A-Z a-z 0-9 . _ -", id="non-ascii"),
]


@pytest.mark.parametrize(("device_id", "problem"), BAD_DEVICE_IDS)
def test_builders_refuse_a_device_id_that_could_break_the_topic(device_id, problem):
    with pytest.raises(TopicError, match=re.escape(problem)):
        topics.device_topic(device_id, "crossings")
    with pytest.raises(TopicError, match=re.escape(problem)):
        topics.device_filter("crossings", device_id)


def test_the_longest_device_id_is_64_characters():
    assert topics.parse(topics.device_topic("k" * 64, "health")).device_id == "k" * 64


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        pytest.param(
            lambda: topics.device_topic("kiosk-1", "selfies"),
            "no device channel named 'selfies'",
            id="device",
        ),
        pytest.param(
            lambda: topics.device_filter("selfies"),
            "no device channel named 'selfies'",
            id="filter",
        ),
        pytest.param(
            lambda: topics.fleet_topic("crossings"),
            "no fleet channel named 'crossings'",
            id="fleet",
        ),
        pytest.param(
            lambda: topics.device_topic("kiosk-1", "watchlist/manifest"),
            "no device channel named 'watchlist/manifest'",
            id="fleet-channel-as-device",
        ),
    ],
)
def test_builders_refuse_an_unknown_channel(build, problem):
    with pytest.raises(TopicError, match=re.escape(problem)):
        build()


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        pytest.param("borderlane/v2/devices/kiosk-1/crossings", "is not under", id="other-version"),
        pytest.param("factory/v1/devices/kiosk-1/crossings", "is not under", id="other-root"),
        pytest.param("", "is not under", id="empty"),
        pytest.param(
            "borderlane/v1/devices/kiosk-1", "no channel after the device id", id="no-channel"
        ),
        pytest.param(
            "borderlane/v1/devices/kiosk-1/selfies",
            "no device channel named 'selfies'",
            id="unknown",
        ),
        pytest.param(
            "borderlane/v1/devices/kiosk-1/crossings/extra",
            "no device channel named 'crossings/extra'",
            id="extra-level",
        ),
        pytest.param(
            "borderlane/v1/fleet/crossings",
            "no fleet channel named 'crossings'",
            id="fleet-unknown",
        ),
        pytest.param(
            "borderlane/v1/devices/+/crossings", "'+' (a wildcard)", id="filter-not-topic"
        ),
        pytest.param("borderlane/v1/devices//crossings", "non-empty string", id="empty-device"),
        pytest.param("borderlane/v1/devices/kiosk\t1/crossings", "control character", id="control"),
    ],
)
def test_parse_refuses_a_topic_outside_the_contract_and_says_why(topic, problem):
    with pytest.raises(TopicError, match=re.escape(problem)):
        topics.parse(topic)


@given(st.one_of(st.text(), st.from_regex(topics.DEVICE_ID_PATTERN, fullmatch=True)))
@example("kiosk-1\n")
@example("+")
@example("k" * 65)
def test_any_text_builds_a_topic_that_parses_back_to_it_or_is_refused(device_id):
    try:
        topic = topics.device_topic(device_id, "crossings")
    except TopicError:
        return
    route = topics.parse(topic)
    assert route.device_id == device_id
    assert route.channel.name == "crossings"


# ---------------------------------------------------------------------------------------------
# Record channels and identifier patterns: one Python definition each, held to the schemas


def test_record_channels_are_kiosk_device_channels_whose_payloads_have_a_required_id():
    assert topics.RECORD_CHANNELS == ("crossings", "hits", "decisions")
    for name in topics.RECORD_CHANNELS:
        channel = topics.channel(name, "device")  # raises if it is not a device channel
        assert channel.record and channel.publisher == "kiosk" and channel.qos == 1
        payload = example_payload(channel.schema)
        del payload["id"]  # the console acks a record by its id, so it cannot be missing
        with pytest.raises(PayloadError) as refused:
            validate(channel.schema, payload)
        assert refused.value.path == "/id"


def test_no_channel_but_the_record_channels_is_a_record():
    records = {c.name for c in topics.CHANNELS if c.record}
    assert records == set(topics.RECORD_CHANNELS)
    assert all(c.scope == "device" for c in topics.CHANNELS if c.record)


PATTERNS = [
    pytest.param(identifiers.NAME, "name", id="name"),
    pytest.param(identifiers.DEVICE_ID, "device_id", id="device_id"),
    pytest.param(identifiers.KEY_ID, "key_id", id="key_id"),
    pytest.param(identifiers.COUNTRY, "country", id="country"),
    pytest.param(identifiers.DOCUMENT_NUMBER, "document_number", id="document_number"),
]


@pytest.mark.parametrize(("pattern", "definition"), PATTERNS)
def test_each_python_identifier_pattern_is_the_schemas_to_the_letter(pattern, definition):
    assert pattern.pattern == load_json("schemas", "defs.v1.json")["$defs"][definition]["pattern"]


@pytest.mark.parametrize(("pattern", "definition"), PATTERNS)
@given(value=st.one_of(st.text(max_size=70), st.from_regex(r"[A-Za-z0-9._-]{1,66}\n?")))
@example(value="lane-1\n")
@example(value="Kiosk-1")
@example(value="k" * 64)
@example(value="k" * 65)
def test_python_fullmatch_agrees_with_the_schema_on_any_text(pattern, definition, value):
    # JSON Schema patterns are ECMA-262 (``$`` is the end of the input); the Python side must
    # use fullmatch to mean the same, which this checks against jsonschema-rs itself.
    assert definition_validator(definition).is_valid(value) == bool(pattern.fullmatch(value))


@cache
def definition_validator(definition: str) -> Any:
    """A jsonschema-rs validator for one ``$defs`` entry of ``defs.v1.json``, as payloads use it."""
    defs = load_json("schemas", "defs.v1.json")
    return jsonschema_rs.Draft202012Validator(
        {"$ref": f"{defs['$id']}#/$defs/{definition}"},
        registry=jsonschema_rs.Registry([(defs["$id"], defs)]),
    )

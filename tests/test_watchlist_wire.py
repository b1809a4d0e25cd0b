"""The watchlist wire format (mqtt_schemas.watchlist): canonical encoding, chunks, signatures.

Both the console (which signs) and the kiosk (which verifies) use this module, so these tests
pin what exactly is signed: if one of them changes, every deployed key's signatures break.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mqtt_schemas
from mqtt_schemas.watchlist import (
    CHUNK_SCHEMA,
    PUBLICATION_FIELDS,
    WatchlistError,
    assemble,
    canonical,
    changes_sha256,
    check_change,
    check_entry,
    diff,
    entry_from_record,
    generate_key,
    key_fingerprint,
    load_private_key,
    load_public_key,
    make_chunks,
    private_key_pem,
    public_key_pem,
    sign_chunks,
    signing_bytes,
    snapshot_changes,
    verify_chunk,
)

PERSON = {
    "names": [{"surname": "CHUN", "given_names": "ELIAS"}, {"surname": "ЧУН"}],
    "birth_date": "1988-11",
    "nationality": ["BLZ", "GTM"],
    "sex": "M",
    "list": "national-wanted",
    "category": "wanted",
    "action": "refer",
}
DOCUMENT = {
    "number": "G10583221",
    "issuing_state": "MEX",
    "document_type": "P",
    "status": "stolen",
    "list": "interpol-sltd",
    "action": "refer",
}


def change(op: str, kind: str, entry_id: str, entry: dict | None = None) -> dict:
    item = {"op": op, "kind": kind, "entry_id": entry_id}
    if entry is not None:
        item["entry"] = entry
    return item


# ---------------------------------------------------------------------------------------------
# Canonical encoding


def test_canonical_sorts_keys_drops_whitespace_and_writes_utf8():
    value = {"b": [1, {"z": None, "a": True}], "a": 'Ωmega "quoted"\n', "é": False}
    assert canonical(value) == (
        '{"a":"Ωmega \\"quoted\\"\\n","b":[1,{"a":true,"z":null}],"é":false}'.encode()
    )


def test_canonical_known_answer():
    # A fixed vector: a console in another language must produce exactly these bytes.
    chunk_body = {
        "schema": CHUNK_SCHEMA,
        "kind": "delta",
        "from_version": 1287,
        "to_version": 1288,
        "chunk_index": 0,
        "chunk_count": 1,
        "key_id": "wl-sign-2026a",
        "changes_sha256": "0" * 64,
        "changes": [change("remove", "person", "nw-2019-00077")],
    }
    encoded = canonical(chunk_body)
    assert encoded.startswith(b'{"changes":[{"entry_id":"nw-2019-00077","kind":"person",')
    assert (
        hashlib.sha256(encoded).hexdigest()
        == hashlib.sha256(
            b'{"changes":[{"entry_id":"nw-2019-00077","kind":"person","op":"remove"}],'
            b'"changes_sha256":"' + b"0" * 64 + b'","chunk_count":1,"chunk_index":0,'
            b'"from_version":1287,"key_id":"wl-sign-2026a","kind":"delta",'
            b'"schema":"watchlist-delta-chunk@1","to_version":1288}'
        ).hexdigest()
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": 1.5}, "float"),
        ({"a": 2**53}, "beyond"),
        ({1: "x"}, "non-string key"),
        ({"a": "\ud800"}, "surrogate"),
        ({"a": {1, 2}}, "set"),
    ],
)
def test_canonical_refuses_what_has_no_single_encoding(value, problem):
    with pytest.raises(WatchlistError, match=problem):
        canonical(value)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_canonical_is_json_and_independent_of_key_order(value):
    encoded = canonical(value)
    assert json.loads(encoded) == value
    if isinstance(value, dict):
        assert canonical(dict(reversed(list(value.items())))) == encoded


def test_changes_digest_is_sha256_of_canonical_json_lines():
    changes = [change("add", "document", "d1", DOCUMENT), change("remove", "person", "p1")]
    lines = b"".join(canonical(c) + b"\n" for c in changes)
    assert changes_sha256(changes) == hashlib.sha256(lines).hexdigest()


# ---------------------------------------------------------------------------------------------
# Entries


def test_entries_mirror_the_schema():
    check_entry("person", PERSON)
    check_entry("document", DOCUMENT)
    for valid in mqtt_schemas.examples("watchlist-delta-chunk")["valid"]:
        for item in valid["payload"]["changes"]:
            check_change(item)


@pytest.mark.parametrize(
    ("kind", "mutate", "where"),
    [
        ("person", lambda e: e.pop("names"), "entry/names"),
        ("person", lambda e: e.update(names=[]), "entry/names"),
        ("person", lambda e: e.update(names=[{"given_names": "X"}]), "entry/names/0"),
        ("person", lambda e: e.update(birth_date="1988-13"), "entry/birth_date"),
        ("person", lambda e: e.update(nationality=["BLZ", "BLZ"]), "entry/nationality"),
        ("person", lambda e: e.update(sex="male"), "entry/sex"),
        ("person", lambda e: e.update(action="arrest"), "entry/action"),
        ("person", lambda e: e.update(photo="x"), "entry/photo"),
        ("document", lambda e: e.update(number="g-1"), "entry/number"),
        ("document", lambda e: e.update(status="found"), "entry/status"),
        ("document", lambda e: e.pop("issuing_state"), "entry/issuing_state"),
    ],
)
def test_bad_entries_are_refused_naming_the_field(kind, mutate, where):
    entry = copy.deepcopy(PERSON if kind == "person" else DOCUMENT)
    mutate(entry)
    with pytest.raises(WatchlistError, match=where) as refused:
        check_entry(kind, entry)
    assert refused.value.reason == "bad-entry"


def test_list_file_records_are_normalized():
    kind, entry_id, entry = entry_from_record(
        {
            "id": "nw-1",
            "kind": "person",
            "names": ["GARCIA LOPEZ, JUAN CARLOS", "ZHANG<<XIAO<MING", {"surname": "TZUL"}],
            "nationality": "mex",
            "sex": "m",
            "birth_date": None,
            "list": "national-wanted",
        }
    )
    assert (kind, entry_id) == ("person", "nw-1")
    assert entry == {
        "names": [
            {"surname": "GARCIA LOPEZ", "given_names": "JUAN CARLOS"},
            {"surname": "ZHANG", "given_names": "XIAO MING"},
            {"surname": "TZUL"},
        ],
        "nationality": ["MEX"],
        "sex": "M",
        "list": "national-wanted",
        "action": "refer",
        "category": "unspecified",
    }
    kind, _, entry = entry_from_record(
        {
            "id": "d1",
            "kind": "document",
            "number": "g10-583 221",
            "issuing_state": "mex",
            "status": "lost",
            "list": "interpol-sltd",
        }
    )
    assert entry["number"] == "G10583221" and entry["issuing_state"] == "MEX"
    assert entry["action"] == "refer"


# ---------------------------------------------------------------------------------------------
# Chunks and signatures


@pytest.fixture(scope="module")
def key():
    return generate_key()


def delta(size: int, *, max_changes: int = 5000, from_version: int = 7) -> list[dict]:
    changes = [
        change("add", "document", f"d{i}", {**DOCUMENT, "number": f"A{i:08d}"}) for i in range(size)
    ]
    return make_chunks(
        "delta",
        changes,
        from_version=from_version,
        to_version=from_version + 1,
        key_id="wl-test",
        max_changes=max_changes,
    )


def test_chunks_split_by_count_and_by_bytes_and_each_commits_to_the_whole():
    chunks = delta(12, max_changes=5)
    assert [len(c["changes"]) for c in chunks] == [5, 5, 2]
    assert [c["chunk_index"] for c in chunks] == [0, 1, 2]
    assert {c["chunk_count"] for c in chunks} == {3}
    everything = [item for c in chunks for item in c["changes"]]
    assert {c["changes_sha256"] for c in chunks} == {changes_sha256(everything)}
    by_bytes = make_chunks(
        "delta",
        everything,
        from_version=7,
        to_version=8,
        key_id="wl-test",
        max_bytes=len(canonical(everything[0])) * 3 + 10,
    )
    assert [len(c["changes"]) for c in by_bytes] == [3, 3, 3, 3]


def test_signed_chunks_validate_against_the_wire_schema(key):
    chunk = sign_chunks(delta(2), key)[0]
    published = {
        **chunk,
        "id": "019ab39d-7001-7f00-8a00-00000000d101",
        "device_id": "console-1",
        "seq": 50101,
        "time": "2026-11-24T08:04:59Z",
        "clock": {"synced": True, "source": "ntp"},
    }
    mqtt_schemas.validate("watchlist-delta-chunk", published)
    # The publication fields are not signed: a replay in a catch-up still verifies.
    replayed = {**published, "seq": 99, "for_device": "kiosk-bz-01", "time": "2026-11-26T00:00:00Z"}
    verify_chunk(replayed, {"wl-test": key.public_key()})
    assert signing_bytes(replayed) == signing_bytes(chunk)
    assert not PUBLICATION_FIELDS & set(json.loads(signing_bytes(replayed)))


def test_signature_is_ed25519_over_the_canonical_signed_part(key):
    chunk = sign_chunks(delta(1), key)[0]
    signature = base64.b64decode(chunk["signature"])
    key.public_key().verify(signature, signing_bytes(chunk))  # raises if not


def flip_last_bit(signature: str) -> str:
    """The same base64 signature with one bit changed (always a different signature)."""
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda c: c.update(to_version=c["to_version"] + 1, from_version=c["from_version"] + 1),
            "bad-signature",
        ),
        (lambda c: c["changes"][0]["entry"].update(status="lost"), "bad-signature"),
        (lambda c: c.update(chunk_index=1, chunk_count=2), "bad-signature"),
        (lambda c: c.update(signature=flip_last_bit(c["signature"])), "bad-signature"),
        (lambda c: c.update(key_id="wl-other"), "untrusted-key"),
        (lambda c: c.pop("changes_sha256"), "bad-chunk"),
        (lambda c: c.pop("signature"), "bad-signature"),
    ],
)
def test_tampered_chunks_fail_verification(key, tamper, reason):
    chunk = copy.deepcopy(sign_chunks(delta(2), key)[0])
    tamper(chunk)
    with pytest.raises(WatchlistError) as refused:
        verify_chunk(chunk, {"wl-test": key.public_key()})
    assert refused.value.reason == reason


def test_a_chunk_signed_by_another_key_under_a_trusted_id_is_forged(key):
    forger = generate_key()
    chunk = sign_chunks(delta(1), forger)[0]
    with pytest.raises(WatchlistError) as refused:
        verify_chunk(chunk, {"wl-test": key.public_key()})
    assert refused.value.reason == "bad-signature"


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (lambda cs: cs[:-1], "truncated"),
        (lambda cs: [cs[0], cs[2]], "truncated"),
        (lambda cs: [cs[1], cs[0], cs[2]], "reordered"),
        (lambda cs: [cs[0], cs[0], cs[1], cs[2]], "duplicate"),
        (lambda cs: [], "empty"),
    ],
)
def test_assembly_needs_every_chunk_in_its_signed_place(key, arrange, reason):
    chunks = sign_chunks(delta(12, max_changes=5), key)
    with pytest.raises(WatchlistError) as refused:
        assemble(arrange(chunks))
    assert refused.value.reason == reason
    assert len(assemble(chunks).changes) == 12


def test_chunks_of_two_deltas_between_the_same_versions_do_not_mix(key):
    first = sign_chunks(delta(12, max_changes=5), key)
    other_changes = [change("remove", "document", f"x{i}") for i in range(12)]
    second = sign_chunks(
        make_chunks(
            "delta", other_changes, from_version=7, to_version=8, key_id="wl-test", max_changes=5
        ),
        key,
    )
    with pytest.raises(WatchlistError) as refused:
        assemble([first[0], second[1], first[2]])
    assert refused.value.reason == "mixed"


def test_snapshots_hold_sorted_adds_and_their_digest_is_the_entry_set_digest():
    entries = [("person", "p2", PERSON), ("document", "d1", DOCUMENT), ("person", "p1", PERSON)]
    changes = snapshot_changes(entries)
    assert [c["entry_id"] for c in changes] == ["d1", "p1", "p2"]
    chunks = make_chunks("snapshot", changes, to_version=1300, key_id="wl-test")
    assert "from_version" not in chunks[0]
    assert chunks[0]["changes_sha256"] == changes_sha256(snapshot_changes(reversed(entries)))
    with pytest.raises(WatchlistError, match="adds only"):
        make_chunks("snapshot", [change("remove", "person", "p1")], to_version=3, key_id="k")


def test_a_delta_changes_each_entry_once_and_leads_to_the_next_version():
    twice = [change("remove", "person", "p1"), change("add", "person", "p1", PERSON)]
    with pytest.raises(WatchlistError, match="twice"):
        make_chunks("delta", twice, from_version=1, to_version=2, key_id="k")
    with pytest.raises(WatchlistError, match="next version"):
        make_chunks("delta", [], from_version=1, to_version=3, key_id="k")


def test_keys_round_trip_through_pem_and_have_a_fingerprint(key):
    again = load_private_key(private_key_pem(key))
    assert public_key_pem(again) == public_key_pem(key)
    assert public_key_pem(load_public_key(public_key_pem(key))) == public_key_pem(key)
    assert len(key_fingerprint(key)) == 16
    with pytest.raises(WatchlistError) as refused:
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    assert refused.value.reason == "bad-key"


def test_diff_gives_adds_updates_and_removes():
    old = [("person", "p1", PERSON), ("document", "d1", DOCUMENT), ("document", "d2", DOCUMENT)]
    changed = {**DOCUMENT, "status": "lost"}
    new = [("document", "d1", changed), ("person", "p1", PERSON), ("person", "p3", PERSON)]
    assert diff(old, new) == [
        change("update", "document", "d1", changed),
        change("add", "person", "p3", PERSON),
        change("remove", "document", "d2"),
    ]


def test_a_delta_verifies_and_assembles_in_one_pass(key):
    from mqtt_schemas.watchlist import verify_delta

    chunks = sign_chunks(delta(12, max_changes=5), key)
    whole = verify_delta(chunks, {"wl-test": key.public_key()})
    assert whole == assemble(chunks)
    forged = copy.deepcopy(chunks)
    forged[2]["changes"][0]["entry"]["status"] = "lost"
    with pytest.raises(WatchlistError) as refused:
        verify_delta(forged, {"wl-test": key.public_key()})
    assert refused.value.reason == "bad-signature"

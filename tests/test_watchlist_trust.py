"""Watchlist signing keys with a lifecycle: an offline anchor says which key signs which
versions; a retired key keeps its versions, a revoked one loses them all, and an old update
replayed cannot bring a key back."""

from __future__ import annotations

import copy

import pytest

from mqtt_schemas.trust import (
    KeyTrust,
    TrustedKey,
    TrustError,
    sign_trust_update,
    verify_trust_update,
)
from mqtt_schemas.watchlist import (
    WatchlistError,
    generate_key,
    make_chunks,
    sign_chunks,
    verify_chunk,
)

ANCHOR = generate_key()
ANCHORS = {"wl-anchor": ANCHOR.public_key()}
OLD, NEW = generate_key(), generate_key()
CHANGE = {
    "op": "add",
    "kind": "document",
    "entry_id": "sltd:MEX:G1",
    "entry": {
        "number": "G1",
        "issuing_state": "MEX",
        "status": "stolen",
        "list": "sltd",
        "action": "refer",
    },
}


def chunk(key, key_id: str, version: int) -> dict:
    made = make_chunks("delta", [CHANGE], from_version=version - 1, to_version=version,
                       key_id=key_id)  # fmt: skip
    return sign_chunks(made, key)[0]


def update(sequence: int, *, old_state: str = "retired", anchor=ANCHOR) -> dict:
    reason = "leaked" if old_state == "revoked" else None
    keys = [
        TrustedKey("wl-old", OLD.public_key(), 1, 100, old_state, reason),
        TrustedKey("wl-new", NEW.public_key(), 101, None, "active"),
    ]
    return sign_trust_update(keys, sequence=sequence, anchor=anchor, anchor_id="wl-anchor")


def trust(document: dict) -> KeyTrust:
    return verify_trust_update(document, ANCHORS, validate_envelope=False)


def test_a_retired_key_signs_only_its_own_versions_and_the_new_key_the_rest():
    held = trust(update(1))
    assert verify_chunk(chunk(OLD, "wl-old", 100), held)
    assert verify_chunk(chunk(NEW, "wl-new", 101), held)
    with pytest.raises(WatchlistError, match="key 'wl-old' signs up to version 100"):
        verify_chunk(chunk(OLD, "wl-old", 101), held)
    with pytest.raises(WatchlistError, match="key 'wl-new' signs from version 101"):
        verify_chunk(chunk(NEW, "wl-new", 100), held)


def test_a_revoked_key_is_refused_for_every_version_even_its_old_ones():
    held = trust(update(2, old_state="revoked"))
    with pytest.raises(WatchlistError, match=r"key 'wl-old' is revoked \(leaked\)"):
        verify_chunk(chunk(OLD, "wl-old", 50), held)
    assert held.sequence == 2


def test_an_update_not_signed_by_an_anchor_or_altered_is_refused():
    with pytest.raises(TrustError, match="not an anchor"):
        verify_trust_update({**update(1), "anchor_id": "someone"}, ANCHORS, validate_envelope=False)
    with pytest.raises(TrustError, match="does not verify"):
        trust(update(1, anchor=generate_key()))
    altered = copy.deepcopy(update(1))
    altered["keys"][0]["until_version"] = 10_000  # stretch the old key's versions
    with pytest.raises(TrustError, match="does not verify"):
        trust(altered)


def test_a_key_not_in_the_update_is_untrusted():
    stranger = generate_key()
    with pytest.raises(WatchlistError, match="not trusted"):
        verify_chunk(chunk(stranger, "wl-stranger", 101), trust(update(1)))


def test_an_update_on_the_wire_must_be_a_whole_contract_payload():
    with pytest.raises(TrustError, match="trust update: "):
        verify_trust_update(update(1), ANCHORS)  # no envelope: id, device_id, seq ...

"""Signed deltas and snapshots on the kiosk: applied whole and in order, or not at all.

Every refusal names its reason and leaves the store as it was, byte for byte (refusals before
the transaction) and row for row (refusals inside it).
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.screening.delta import DeltaRejected, apply_chunks, load_trust
from edge.screening.store import WatchlistStore
from mqtt_schemas.watchlist import (
    diff,
    entry_from_record,
    generate_key,
    make_chunks,
    public_key_pem,
    sign_chunks,
    snapshot_changes,
)

KEY_ID = "wl-test"
KEY = generate_key()
TRUSTED = {KEY_ID: KEY.public_key()}


def person(n: int, surname: str = "CHUN", action: str = "refer") -> tuple[str, str, dict]:
    return entry_from_record(
        {
            "id": f"p{n}",
            "kind": "person",
            "names": [f"{surname}, ELIAS {n}"],
            "birth_date": f"{1950 + n % 50}",
            "list": "national-wanted",
            "action": action,
        }
    )


def document(n: int, status: str = "stolen") -> tuple[str, str, dict]:
    return entry_from_record(
        {
            "id": f"d{n}",
            "kind": "document",
            "number": f"A{n:07d}",
            "issuing_state": "MEX",
            "status": status,
            "list": "interpol-sltd",
        }
    )


V1 = [person(n) for n in range(6)] + [document(n) for n in range(6)]
V2 = (
    [person(n) for n in range(1, 6)]  # p0 removed
    + [person(6, "MAYA")]  # p6 added
    + [document(n, "lost" if n == 2 else "stolen") for n in range(6)]  # d2 updated
)


def signed(kind, changes, *, to_version, from_version=None, key=KEY, key_id=KEY_ID, size=2):
    return sign_chunks(
        make_chunks(
            kind,
            changes,
            from_version=from_version,
            to_version=to_version,
            key_id=key_id,
            max_changes=size,
        ),
        key,
    )


def delta_1_2() -> list[dict]:
    return signed("delta", diff(V1, V2), from_version=1, to_version=2)


@pytest.fixture
def store(tmp_path):
    """A store holding V1 at version 1, applied from a signed snapshot."""
    with WatchlistStore(tmp_path / "watchlist.db") as opened:
        apply_chunks(opened, signed("snapshot", snapshot_changes(V1), to_version=1), TRUSTED)
        yield opened


def fingerprint(store: WatchlistStore) -> tuple[str, list[str]]:
    """The main database file's bytes (hashed) and every row of every table."""
    data = hashlib.sha256(Path(store.path).read_bytes()).hexdigest()
    return data, list(store.connection.iterdump())


def content(store: WatchlistStore) -> list[tuple[str, str, dict]]:
    return sorted(store.entries())


def test_a_delta_applies_and_records_its_version(store):
    assert store.version == 1
    result = apply_chunks(store, delta_1_2(), TRUSTED)
    assert (result.added, result.updated, result.removed) == (1, 1, 1)
    assert store.version == 2 and store.applied_at
    assert store.status()["applied_from"] == "delta 1 -> 2"
    assert content(store) == sorted(V2)
    assert store.counts() == {"persons": 6, "documents": 6}


# ---------------------------------------------------------------------------------------------
# Tampering, replays, gaps: refused, store unchanged


def forged(chunks):
    chunks = copy.deepcopy(chunks)
    chunks[1]["changes"][0]["entry_id"] = "p5"  # sneak a change in
    return chunks


def altered(chunks):
    chunks = copy.deepcopy(chunks)
    chunks[0]["changes"] = chunks[0]["changes"][:1]  # drop a change from a chunk
    return chunks


def reordered(chunks):
    return [chunks[1], chunks[0], *chunks[2:]]


def truncated(chunks):
    return chunks[:-1]


def untrusted(_):
    return signed(
        "delta", diff(V1, V2), from_version=1, to_version=2, key=generate_key(), key_id="wl-rogue"
    )


def impostor(_):
    # Signed by another key that claims a trusted key's id.
    return signed("delta", diff(V1, V2), from_version=1, to_version=2, key=generate_key())


def gap(_):
    return signed("delta", diff(V1, V2), from_version=2, to_version=3)


def mixed(chunks):
    other = signed(
        "delta",
        [{"op": "remove", "kind": "document", "entry_id": f"d{n}"} for n in range(6)],
        from_version=1,
        to_version=2,
    )
    return [chunks[0], other[1], *chunks[2:]]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (forged, "bad-signature"),
        (altered, "bad-signature"),
        (untrusted, "untrusted-key"),
        (impostor, "bad-signature"),
        (reordered, "reordered"),
        (truncated, "truncated"),
        (mixed, "mixed"),
        (gap, "gap"),
    ],
)
def test_a_bad_delta_is_refused_with_its_reason_and_changes_nothing(store, tamper, reason):
    before = fingerprint(store)
    with pytest.raises(DeltaRejected) as refused:
        apply_chunks(store, tamper(delta_1_2()), TRUSTED)
    assert refused.value.reason == reason, str(refused.value)
    assert fingerprint(store) == before
    assert store.version == 1


def test_a_replayed_delta_is_refused(store):
    chunks = delta_1_2()
    apply_chunks(store, chunks, TRUSTED)
    before = fingerprint(store)
    with pytest.raises(DeltaRejected) as refused:
        apply_chunks(store, chunks, TRUSTED)
    assert refused.value.reason == "replay"
    assert "already applied" in str(refused.value)
    assert fingerprint(store) == before


def test_an_older_delta_is_refused(store):
    apply_chunks(store, delta_1_2(), TRUSTED)
    apply_chunks(store, signed("delta", [], from_version=2, to_version=3), TRUSTED)
    before = fingerprint(store)
    with pytest.raises(DeltaRejected) as refused:
        apply_chunks(store, delta_1_2(), TRUSTED)
    assert refused.value.reason == "older"
    assert fingerprint(store) == before
    assert store.version == 3


def test_a_delta_that_does_not_fit_the_store_rolls_back_whole(store):
    # Signed and in sequence, but its last change updates an entry the store does not hold:
    # the earlier changes, already written in the transaction, are rolled back too.
    kind, entry_id, entry = document(99)
    changes = [*diff(V1, V2), {"op": "update", "kind": kind, "entry_id": entry_id, "entry": entry}]
    before = list(store.connection.iterdump())
    with pytest.raises(DeltaRejected) as refused:
        apply_chunks(store, signed("delta", changes, from_version=1, to_version=2), TRUSTED)
    assert refused.value.reason == "diverged"
    assert "snapshot" in str(refused.value)
    assert list(store.connection.iterdump()) == before
    assert store.version == 1


def test_no_trusted_key_means_nothing_applies(store):
    with pytest.raises(DeltaRejected) as refused:
        apply_chunks(store, delta_1_2(), {})
    assert refused.value.reason == "untrusted-key"


# ---------------------------------------------------------------------------------------------
# Snapshots


def test_a_snapshot_replaces_the_store(store):
    snapshot = signed("snapshot", snapshot_changes(V2), to_version=7, size=3)
    result = apply_chunks(store, snapshot, TRUSTED)
    assert result.kind == "snapshot" and store.version == 7
    assert content(store) == sorted(V2)
    assert store.counts() == {"persons": 6, "documents": 6}


def test_an_older_snapshot_is_refused(store):
    apply_chunks(store, delta_1_2(), TRUSTED)
    before = fingerprint(store)
    with pytest.raises(DeltaRejected) as refused:
        apply_chunks(store, signed("snapshot", snapshot_changes(V1), to_version=1), TRUSTED)
    assert refused.value.reason == "older"
    assert fingerprint(store) == before


def test_a_snapshot_that_fails_half_way_leaves_the_old_store(store, monkeypatch):
    snapshot = signed("snapshot", snapshot_changes(V2), to_version=5)
    before = list(store.connection.iterdump())
    calls = {"n": 0}
    add = WatchlistStore.add

    def failing_add(self, kind, entry_id, entry):
        calls["n"] += 1
        if calls["n"] == 4:  # documents went first, in bulk; this is the 4th person
            raise OSError(28, "No space left on device")
        return add(self, kind, entry_id, entry)

    monkeypatch.setattr(WatchlistStore, "add", failing_add)
    with pytest.raises(OSError):
        apply_chunks(store, snapshot, TRUSTED)
    monkeypatch.undo()
    assert list(store.connection.iterdump()) == before
    assert store.version == 1 and content(store) == sorted(V1)


def test_readers_see_the_old_version_until_the_commit(store, tmp_path):
    with WatchlistStore(tmp_path / "watchlist.db", readonly=True) as reader:
        reader.connection.execute("BEGIN")
        assert reader.version == 1
        apply_chunks(store, delta_1_2(), TRUSTED)
        assert reader.version == 1  # its read transaction still sees version 1
        assert reader.get("person", "p0") is not None
        reader.connection.execute("COMMIT")
        assert reader.version == 2 and reader.get("person", "p0") is None


def test_trusted_keys_load_from_files(tmp_path):
    (tmp_path / f"{KEY_ID}.pub.pem").write_bytes(public_key_pem(KEY))
    other = tmp_path / "other.pem"
    other.write_bytes(public_key_pem(generate_key()))
    trusted = load_trust([("wl-other", other)], tmp_path)
    assert set(trusted) == {KEY_ID, "wl-other"}


# ---------------------------------------------------------------------------------------------
# Property: diff + sign + apply turns any list into any other


def entries():
    persons = st.builds(
        lambda n, surname, action: person(n, surname, action),
        st.integers(0, 30),
        st.sampled_from(["CHUN", "MAYA", "GARCIA LOPEZ", "AL-RASHID", "Иванов"]),
        st.sampled_from(["refer", "deny", "alert"]),
    )
    documents = st.builds(
        lambda n, status: document(n, status),
        st.integers(0, 30),
        st.sampled_from(["stolen", "lost", "revoked", "invalid"]),
    )
    unique = st.lists(persons | documents, max_size=25, unique_by=lambda e: (e[0], e[1]))
    return unique


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(old=entries(), new=entries(), size=st.integers(1, 6))
def test_diff_then_apply_yields_the_new_list(tmp_path_factory, old, new, size):
    path = tmp_path_factory.mktemp("property") / "watchlist.db"
    with WatchlistStore(path) as store:
        apply_chunks(
            store, signed("snapshot", snapshot_changes(old), to_version=10, size=size), TRUSTED
        )
        assert content(store) == sorted(old)
        changes = diff(old, new)
        apply_chunks(
            store, signed("delta", changes, from_version=10, to_version=11, size=size), TRUSTED
        )
        assert content(store) == sorted(new)
        assert store.version == 11
        kinds = [kind for kind, _, _ in new]
        assert store.counts() == {
            "persons": kinds.count("person"),
            "documents": kinds.count("document"),
        }
        # and the index matches the entries: nothing stale, nothing missing
        index = store.connection.execute("SELECT DISTINCT pid FROM person_keys").fetchall()
        persons = store.connection.execute("SELECT pid FROM persons").fetchall()
        assert sorted(index) == sorted(persons)

"""The kiosk's state encrypted at rest: ext4 encryption (fscrypt v2) on a real file system.

Every test makes its own ext4 file system in a file, mounts it through a loop device (root, as
the project's tests run), and unmounts it at the end, whatever happened. The state is written
by the kiosk's own parts (outbox, review queue, watchlist store and screener, the agent
itself), then the raw bytes of the file system are searched for a traveller's document
number and name: found when the state directory is plain, nowhere when it is encrypted.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.agent.agent import Agent, AgentStartError
from edge.agent.config import AgentConfigError, load_config
from edge.agent.encryption import EncryptionError, key_identifier, lock, master_key, status
from edge.cli import cli
from edge.lane.reviews import ReviewItem, ReviewQueue
from edge.screening.matcher import Query, Screener
from edge.screening.store import WatchlistStore
from edge.uplink import Outbox
from edge.uplink.config import OutboxLimits
from harness.uplink import crossing_body
from mqtt_schemas.envelope import SystemClock
from mqtt_schemas.watchlist import entry_from_record

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "images" / "encrypt-state.sh"
EDGE = Path(sys.executable).parent / "borderlane-edge"

DOCUMENT = "CB7730194"
"""The traveller's document number: in the crossing, the review queue and the watchlist."""
SURNAME = "QUETZALTENANGO"
LIMITS = {"reserve_free_bytes": 1 << 20, "alarm_free_bytes": 2 << 20}
"""The outbox's disk reserve, scaled to the test's 48 MiB card."""


class Disk:
    """An ext4 file system in *image*, mounted at *mount* through a loop device."""

    def __init__(self, image: Path, mount: Path, *, encrypt_feature: bool) -> None:
        self.image, self.mount = image, mount
        with image.open("wb") as out:
            out.truncate(48 << 20)
        features = ["-O", "encrypt"] if encrypt_feature else []
        subprocess.run(["mkfs.ext4", "-q", "-F", *features, str(image)], check=True)
        mount.mkdir(mode=0o700)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
        self.mounted = True

    def detach(self) -> None:
        """Unmount (the loop device goes with it)."""
        if self.mounted:
            # Written out first: should another mount namespace (made by any process on the
            # machine while this was mounted) still hold the file system, unmounting here
            # would not flush it, and the raw image would miss what the test looks for.
            subprocess.run(["sync", "-f", str(self.mount)], check=True)
            subprocess.run(["umount", str(self.mount)], check=True)
            self.mounted = False

    def enable_encryption(self) -> None:
        """Turn on ext4's ``encrypt`` feature, as the image's script does (mounted: fine)."""
        device = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(self.mount)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        subprocess.run(["tune2fs", "-O", "encrypt", device], check=True, capture_output=True)

    def raw(self) -> bytes:
        """The file system's bytes as a thief with the card would read them."""
        self.detach()
        return self.image.read_bytes()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    disk = Disk(tmp_path / "card.img", tmp_path / "card", encrypt_feature=False)
    try:
        yield disk
    finally:
        if disk.mounted:
            result = subprocess.run(["umount", str(disk.mount)], check=False)
            if result.returncode:  # something still holds it: do not leave it mounted
                subprocess.run(["umount", "-l", str(disk.mount)], check=False)


def encrypt_state(state: Path, key_file: Path) -> subprocess.CompletedProcess[str]:
    """The image's script, as the image runs it."""
    return subprocess.run(
        ["sh", str(SCRIPT), "--key-file", str(key_file), "--owner", "nobody-here", str(state)],
        capture_output=True,
        text=True,
        env={**os.environ, "BORDERLANE_EDGE": str(EDGE)},
        timeout=60,
    )


def referred(crossing_id: str) -> ReviewItem:
    return ReviewItem(
        crossing_id,
        1_795_000_000_000,
        "lane-1",
        "normal",
        ("watchlist-refer",),
        {"kind": "cbic", "issuing_state": "BLZ"},
        {"traveller": {"surname": SURNAME, "document_number": DOCUMENT}},
        "open",
    )


WATCHLIST = [
    {"id": "p-1", "kind": "person", "names": [f"{SURNAME}, MARIA"], "list": "national"},
    {"id": f"sltd:BLZ:{DOCUMENT}", "kind": "document", "number": DOCUMENT,
     "issuing_state": "BLZ", "status": "stolen", "list": "interpol-sltd"},
]  # fmt: skip


def write_state(state: Path) -> str:
    """A crossing in the outbox with its review item, and the watchlist that referred it."""
    body = crossing_body(1)
    body["document"] = {**body["document"], "number": DOCUMENT}
    with Outbox(
        state / "kiosk.db", "kiosk-bz-crypt", SystemClock(), OutboxLimits(**LIMITS)
    ) as outbox:
        ReviewQueue(outbox, retention_s=86_400)
        with outbox.transaction() as tx:
            record = tx.enqueue("crossings", body)
            ReviewQueue.insert(tx, referred(record.id))
    with WatchlistStore(state / "watchlist.db") as store, store.transaction():
        for item in WATCHLIST:
            store.add(*entry_from_record(item))
    return record.id


def read_state(state: Path, crossing_id: str) -> None:
    """What :func:`write_state` wrote reads back, through the same parts."""
    with Outbox(
        state / "kiosk.db", "kiosk-bz-crypt", SystemClock(), OutboxLimits(**LIMITS)
    ) as outbox:
        (record,) = outbox.pending(0, 10)
        assert record.id == crossing_id
        assert json.loads(record.payload)["document"]["number"] == DOCUMENT
        item = ReviewQueue(outbox, retention_s=86_400).get(crossing_id)
        assert item.personal["traveller"]["document_number"] == DOCUMENT
    with WatchlistStore(state / "watchlist.db", readonly=True) as store:
        query = Query.from_dict({"surname": SURNAME, "given_names": "MARIA"})
        assert {hit.entry_id for hit in Screener(store).screen(query)} == {"p-1"}


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_travellers_data_is_on_the_card_in_plain_text_unless_the_state_is_encrypted(
    disk, tmp_path, encrypted
):
    state, key_file = disk.mount / "borderlane", tmp_path / "etc" / "state.key"
    if encrypted:
        made = encrypt_state(state, key_file)
        assert made.returncode == 0, made.stderr
        assert "turned on the encrypt feature" in made.stdout  # mkfs made it without
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_size == 64
    else:
        state.mkdir(mode=0o700)
    crossing_id = write_state(state)
    read_state(state, crossing_id)

    raw = disk.raw()
    assert (DOCUMENT.encode() in raw) is not encrypted
    assert (SURNAME.encode() in raw) is not encrypted
    assert (b"SQLite format 3" in raw) is not encrypted
    assert (b"kiosk.db" in raw) is not encrypted  # the names are encrypted too


def test_a_locked_state_directory_reads_nothing_until_its_key_is_added_again(disk, tmp_path):
    state, key_file = disk.mount / "borderlane", tmp_path / "state.key"
    assert encrypt_state(state, key_file).returncode == 0
    crossing_id = write_state(state)
    locked = CliRunner().invoke(cli, ["storage", "lock", "--key-file", str(key_file), str(state)])
    assert locked.exit_code == 0, locked.output  # as at power-off: the kernel has no key
    assert json.loads(locked.output)["key"] == "absent"

    found = status(state)
    assert found.encrypted and found.key == "absent" and found.contents == "aes-256-xts"
    names = os.listdir(state)
    assert names and "kiosk.db" not in names  # ciphertext names, and no way into the files
    for name in names:
        with pytest.raises(OSError, match="Required key not available"):
            (state / name).read_bytes()

    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(64))
    wrong.chmod(0o600)
    refused = CliRunner().invoke(cli, ["storage", "unlock", "--key-file", str(wrong), str(state)])
    assert refused.exit_code == 1
    assert refused.output == f"Error: {state}: that key material is not this directory's key\n"
    assert status(state).key == "absent"

    unlocked = subprocess.run(  # key material on standard input, as an unsealing command gives it
        [str(EDGE), "storage", "unlock", "--key-file", "-", str(state)],
        input=key_file.read_bytes(),
        capture_output=True,
        check=True,
    )
    found_now = json.loads(unlocked.stdout)
    assert found_now["key"] == "present"
    assert found_now["key_identifier"] == key_identifier(master_key(key_file.read_bytes())).hex()
    read_state(state, crossing_id)

    lock(state, key_file.read_bytes())
    again = encrypt_state(state, key_file)  # the script run again: it only unlocks
    assert again.returncode == 0 and "encrypted already" in again.stdout, again.stderr
    read_state(state, crossing_id)


KIOSK = """
[agent]
device_id = "kiosk-bz-crypt"
data_dir = "{data_dir}"

[lane]
site = "bz-santa-elena"
lane = "lane-1"
direction = "entry"

[uplink.broker]
host = "127.0.0.1"
ca_file = "pki/ca.crt"
cert_file = "pki/kiosk.crt"
key_file = "pki/kiosk.key"

[uplink.outbox]
reserve_free_bytes = 1048576
alarm_free_bytes = 2097152

[storage]
encrypted = true
"""


def open_agent(tmp_path: Path, data_dir: Path) -> Agent:
    (tmp_path / "kiosk.toml").write_text(textwrap.dedent(KIOSK.format(data_dir=data_dir)))
    agent = Agent(load_config(tmp_path / "kiosk.toml", agent_version="1.0.0"))
    agent.open()
    return agent


def test_the_agent_runs_only_on_an_encrypted_unlocked_state_directory(disk, tmp_path):
    plain = disk.mount / "plain"
    plain.mkdir()
    with pytest.raises(AgentStartError, match=r"^storage.encrypted: .* has no encryption"):
        open_agent(tmp_path, plain)  # a file system that cannot be encrypted
    disk.enable_encryption()
    with pytest.raises(AgentStartError, match=rf"^storage.encrypted: {plain}: not encrypted;"):
        open_agent(tmp_path, plain)  # one that can, but the image's script did not run
    assert os.listdir(plain) == []  # it wrote nothing there
    with pytest.raises(AgentStartError, match=r"missing; with \[storage\] encrypted = true"):
        open_agent(tmp_path, disk.mount / "never-made")
    assert not (disk.mount / "never-made").exists()

    state, key_file = disk.mount / "borderlane", tmp_path / "state.key"
    assert encrypt_state(state, key_file).returncode == 0
    agent = open_agent(tmp_path, state)
    try:
        assert agent.outbox is not None and agent.lane is not None
        agent.outbox.enqueue("crossings", {**crossing_body(2), "document": {
            **crossing_body(2)["document"], "number": DOCUMENT}})  # fmt: skip
        assert {"kiosk.db", "watchlist.db"} <= set(os.listdir(state))
    finally:
        agent.close()
    lock(state, key_file.read_bytes())  # a reboot whose unlock failed: the agent refuses
    with pytest.raises(AgentStartError, match=r"encrypted but locked \(key absent\)"):
        open_agent(tmp_path, state)
    assert encrypt_state(state, key_file).returncode == 0
    agent = open_agent(tmp_path, state)
    try:
        assert agent.outbox.stats().depth == 1
    finally:
        agent.close()
    assert DOCUMENT.encode() not in disk.raw()


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["storage", *args])
    return result.exit_code, result.output


def test_every_refusal_is_one_line_and_leaves_nothing_half_done(disk, tmp_path):
    disk.enable_encryption()
    key = tmp_path / "state.key"
    assert invoke("new-key", str(key)) == (0, f"wrote a new key to {key}\n")
    assert invoke("new-key", str(key)) == (1, f"Error: key file {key}: exists already; not "
                                              "overwritten\n")  # fmt: skip
    loose = tmp_path / "loose.key"
    loose.write_bytes(os.urandom(64))
    loose.chmod(0o644)
    target = disk.mount / "state"
    code, output = invoke("setup", "--key-file", str(loose), str(target))
    assert code == 1 and output.startswith(f"Error: key file {loose}: readable by others (mode")
    short = tmp_path / "short.key"
    short.write_bytes(os.urandom(16))
    short.chmod(0o600)
    code, output = invoke("setup", "--key-file", str(short), str(target))
    assert (code, output) == (1, f"Error: key file {short}: 16 bytes; 32 to 4096 are needed\n")

    # A cipher the kernel has not got (this one lacks Adiantum): refused at setup, not with
    # the first traveller, and no encrypted directory is left behind.
    if not Path("/proc/crypto").read_text().count("adiantum"):
        code, output = invoke("setup", "--key-file", str(key), "--cipher", "adiantum", str(target))
        assert (code, output.count("\n")) == (1, 1) and "cannot use the adiantum cipher" in output
        assert not target.exists()

    target.mkdir()
    (target / "kiosk.db").write_bytes(b"plain")
    code, output = invoke("setup", "--key-file", str(key), str(target))
    assert code == 1 and output.startswith(f"Error: {target}: not empty;")
    assert not status(target).encrypted

    tmpfs = tmp_path / "tmpfs"
    tmpfs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tmpfs)], check=True)
    try:
        code, output = invoke("setup", "--key-file", str(key), str(tmpfs / "state"))
        assert code == 1 and "its file system has no encryption" in output
        assert output.count("\n") == 1 and not (tmpfs / "state").exists()
        with pytest.raises(EncryptionError, match="its file system has no encryption"):
            status(tmpfs)
    finally:
        subprocess.run(["umount", str(tmpfs)], check=True)

    result = subprocess.run(
        ["sh", str(SCRIPT), str(tmpfs)],
        capture_output=True,
        text=True,
        env={**os.environ, "BORDERLANE_EDGE": str(tmp_path / "no-such-binary")},
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "not found; set BORDERLANE_EDGE" in result.stderr


@pytest.mark.parametrize(
    "line, problem",
    [("encrypted = 1", "storage.encrypted: true or false, got 1"), ("cipher = 'aes'", "cipher")],
)
def test_the_storage_table_is_checked_like_every_other(tmp_path, line, problem):
    text = textwrap.dedent(KIOSK.format(data_dir="state")).replace("encrypted = true", line)
    (tmp_path / "kiosk.toml").write_text(text)
    with pytest.raises(AgentConfigError, match=problem):
        load_config(tmp_path / "kiosk.toml", agent_version="1.0.0")


def test_a_plain_kiosk_needs_no_storage_table(tmp_path):
    text = textwrap.dedent(KIOSK.format(data_dir="state")).split("[storage]")[0]
    (tmp_path / "kiosk.toml").write_text(text)
    assert load_config(tmp_path / "kiosk.toml", agent_version="1.0.0").storage.encrypted is False

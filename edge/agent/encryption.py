"""The kiosk's state directory encrypted at rest by the kernel (fscrypt, ext4's ``encrypt``).

A kiosk can be stolen, or its SD card pulled. Everything the agent keeps about travellers lives
under ``[agent] data_dir`` (``kiosk.db`` with its WAL: the outbox, lane state, the officers'
review queue, command results; ``watchlist.db`` and the watchlist's chunk staging;
``officer-logins.json``). This module puts that directory under an fscrypt *v2 policy*: the
kernel encrypts every file's contents (AES-256-XTS) and every name in it (AES-256-CTS), per
file, with keys derived from one master key. Nothing above the file system changes: SQLite,
its WAL and ``mmap`` work as they do on any disk, and so does every file added later.

Why the file system and not SQLCipher (the README's "Personal data at rest" says it in full):
it covers every file of the directory, not only the databases; it leaves the stdlib ``sqlite3``
module (and the exception classes every ``except sqlite3.IntegrityError`` in the kiosk relies
on) as it is; and it is the kernel's crypto, with AES instructions where the CPU has them.

The master key never lives in this module's files: it comes from *key material* (a file or
standard input, at least 32 bytes) through HKDF-SHA512, so any secret of 32 bytes or more can
unlock a kiosk (a key file, a secret unsealed from a TPM or secure element, the Raspberry Pi's
OTP device key). The kernel keeps the master key in the file system's own keyring from
``unlock`` until ``lock`` or unmount; while it is there, the files read as plain files to every
process with the right permissions: this protects data *at rest* (a powered-off kiosk, a pulled
card), never a running one.

The operations, each raising :class:`EncryptionError` (one line, no key material in it)::

    material = read_key_material(Path("/etc/borderlane/state.key"))
    setup(Path("/var/lib/borderlane"), material)       # once, on an empty directory
    unlock(Path("/var/lib/borderlane"), material)      # at every boot, before the agent
    status(Path("/var/lib/borderlane"))                # encrypted? key present?
    lock(Path("/var/lib/borderlane"), material)        # key out of the kernel, caches dropped

The ioctls are Linux's ``<linux/fscrypt.h>``; they are issued here directly (``fcntl.ioctl``)
because Debian 12 packages no ``fscryptctl``, and the agent needs them itself to refuse to run
on an unencrypted directory (``[storage] encrypted = true``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "CIPHERS",
    "EncryptionError",
    "State",
    "key_identifier",
    "lock",
    "master_key",
    "new_key_file",
    "read_key_material",
    "require_encrypted",
    "setup",
    "status",
    "unlock",
]

MIN_MATERIAL = 32
"""Bytes of key material at least: 256 bits, what HKDF then stretches to the master key."""
MAX_MATERIAL = 4096
MASTER_KEY_BYTES = 64
"""AES-256-XTS takes a 64-byte key; a v2 master key must be at least that long."""
_HKDF_INFO = b"borderlane state directory v1"

# <linux/fscrypt.h>
_KEY_SPEC_TYPE_IDENTIFIER = 2
_POLICY_V2 = 2
_MODES = {1: "aes-256-xts", 4: "aes-256-cts", 9: "adiantum"}
CIPHERS: dict[str, tuple[int, int, int]] = {
    # name: (contents mode, filenames mode, flags). 0x02: names padded to 16 bytes (hides their
    # length better than 4); 0x04 (DIRECT_KEY): Adiantum's per-file nonce makes per-file keys
    # unnecessary, and skipping them is what makes it fast on CPUs without AES instructions.
    "aes": (1, 4, 0x02),
    "adiantum": (9, 9, 0x02 | 0x04),
}
_STATUS_NAMES = {1: "absent", 2: "present", 3: "incompletely removed"}
_REMOVAL_FILES_BUSY = 0x1


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("f") << 8) | number


_SET_POLICY = _ioc(2, 19, 12)  # _IOR, sized by the v1 policy (the kernel reads the version)
_GET_POLICY_EX = _ioc(3, 22, 9)
_ADD_KEY = _ioc(3, 23, 80)
_REMOVE_KEY = _ioc(3, 24, 64)
_KEY_STATUS = _ioc(3, 26, 128)


class EncryptionError(Exception):
    """The state directory cannot be set up, unlocked, locked or trusted; one line, the path
    and what to do, never key material."""


@dataclass(frozen=True)
class State:
    """What :func:`status` finds: is *directory* encrypted, with what, and is its key in?"""

    directory: Path
    encrypted: bool
    contents: str | None = None
    filenames: str | None = None
    identifier: str | None = None
    """The master key's identifier (hex): names the key, reveals nothing of it."""
    key: Literal["absent", "present", "incompletely removed"] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "encrypted": self.encrypted,
            "contents": self.contents,
            "filenames": self.filenames,
            "key_identifier": self.identifier,
            "key": self.key,
        }


def read_key_material(source: Path | BinaryIO) -> bytes:
    """The key material in *source*: a file only its owner can read (0600 or 0400), or a
    stream (standard input, from a command that unseals it). 32 to 4096 bytes."""
    if isinstance(source, Path):
        try:
            info = source.stat()
        except OSError as exc:
            raise EncryptionError(f"key file {source}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise EncryptionError(f"key file {source}: not a regular file")
        if info.st_mode & 0o077:
            raise EncryptionError(
                f"key file {source}: readable by others (mode {stat.S_IMODE(info.st_mode):04o});"
                " chmod 600 it, and count the key as disclosed"
            )
        try:
            material = source.read_bytes()
        except OSError as exc:
            raise EncryptionError(f"key file {source}: {exc.strerror or exc}") from None
        where = f"key file {source}"
    else:
        material = source.read(MAX_MATERIAL + 1)
        where = "key material on standard input"
    if not MIN_MATERIAL <= len(material) <= MAX_MATERIAL:
        raise EncryptionError(
            f"{where}: {len(material)} bytes; {MIN_MATERIAL} to {MAX_MATERIAL} are needed"
        )
    return material


def new_key_file(path: Path) -> None:
    """Write 64 random bytes to *path*, created 0600; an existing file is never overwritten
    (it may be the only key to a kiosk's data)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise EncryptionError(f"key file {path}: exists already; not overwritten") from None
    except OSError as exc:
        raise EncryptionError(f"key file {path}: {exc.strerror or exc}") from None
    try:
        os.write(descriptor, os.urandom(64))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def master_key(material: bytes) -> bytes:
    """The 64-byte fscrypt master key for *material* (HKDF-SHA512, a fixed label): the same
    material always unlocks the same directory, whatever its length."""
    return HKDF(hashes.SHA512(), MASTER_KEY_BYTES, salt=None, info=_HKDF_INFO).derive(material)


def setup(directory: Path, material: bytes, cipher: str = "aes") -> State:
    """Make *directory* (missing, or empty) an encrypted directory with the master key of
    *material*, and leave its key added. Fails, leaving no encrypted directory behind, when
    the file system or the kernel cannot do it (with what to do)."""
    if cipher not in CIPHERS:
        raise EncryptionError(f"cipher {cipher!r}: one of {', '.join(CIPHERS)}")
    made = False
    try:
        directory.mkdir(mode=0o700)
        made = True
    except FileExistsError:
        if not directory.is_dir():
            raise EncryptionError(f"{directory}: not a directory") from None
        if any(directory.iterdir()):
            raise EncryptionError(
                f"{directory}: not empty; an encrypted directory starts empty (move its files"
                " out, set it up, move them back in)"
            ) from None
    except OSError as exc:
        raise EncryptionError(f"{directory}: {exc.strerror or exc}") from None
    directory.chmod(0o700)
    try:
        identifier = _add_key(directory, master_key(material))
        contents, filenames, flags = CIPHERS[cipher]
        policy = struct.pack("=BBBB4x16s", _POLICY_V2, contents, filenames, flags, identifier)
        _ioctl(directory, _SET_POLICY, policy, "set the encryption policy of")
        _probe(directory, cipher)
    except EncryptionError:
        if made:
            directory.rmdir()
        raise
    return status(directory)


def unlock(directory: Path, material: bytes) -> State:
    """Add the master key of *material* for the encrypted *directory*; refuse, adding
    nothing, when it is not that directory's key."""
    key = master_key(material)
    _check_key(directory, key)
    _add_key(directory, key)
    return status(directory)


def lock(directory: Path, material: bytes) -> State:
    """Take *directory*'s key out of the kernel: its files' plaintext is dropped from the
    caches and they read as ciphertext until :func:`unlock`. Refused while a file in it is
    open (stop the agent first): the key would stay, in part, for those files."""
    key = master_key(material)
    _check_key(directory, key)
    if _remove_key(directory, key_identifier(key)) & _REMOVAL_FILES_BUSY:
        raise EncryptionError(
            f"{directory}: files in it are still open (stop the agent); the key is removed"
            " for the others and goes when those close"
        )
    return status(directory)


def key_identifier(key: bytes) -> bytes:
    """The identifier the kernel gives the master *key* (fs/crypto/hkdf.c: HKDF-SHA512 with a
    zero salt, info ``fscrypt\\0`` and context 1): it names the key, reveals nothing of it,
    and lets a key be checked against a directory without handing it to the kernel."""
    hkdf = HKDF(hashes.SHA512(), 16, salt=bytes(64), info=b"fscrypt\x00\x01")
    return hkdf.derive(key)


def _check_key(directory: Path, key: bytes) -> None:
    state = status(directory)
    if not state.encrypted:
        raise EncryptionError(f"{directory}: not encrypted; it has no key")
    if key_identifier(key).hex() != state.identifier:
        raise EncryptionError(f"{directory}: that key material is not this directory's key")


def status(directory: Path) -> State:
    """Whether *directory* is encrypted, its modes, and whether its key is in the kernel."""
    argument = bytearray(struct.pack("=Q24x", 24))
    try:
        _ioctl(directory, _GET_POLICY_EX, argument, "read the encryption policy of")
    except _NotEncrypted:
        return State(directory, False)
    _size, version, contents, filenames, _flags, identifier = struct.unpack_from(
        "=QBBBB4x16s", argument
    )
    if version != _POLICY_V2:  # a v1 policy's key lives in a session keyring: not ours
        raise EncryptionError(f"{directory}: an fscrypt v{version} policy; only v2 is supported")
    key_argument = bytearray(struct.pack("=II16s16x24x", _KEY_SPEC_TYPE_IDENTIFIER, 0, identifier))
    key_argument += bytes(128 - len(key_argument))
    where = f"read the key status of {directory} on"
    _ioctl(_filesystem_root(directory), _KEY_STATUS, key_argument, where)
    (key_status,) = struct.unpack_from("=I", key_argument, 64)
    return State(
        directory,
        True,
        _MODES.get(contents, str(contents)),
        _MODES.get(filenames, str(filenames)),
        identifier.hex(),
        _STATUS_NAMES.get(key_status, "absent"),  # type: ignore[arg-type]
    )


def require_encrypted(directory: Path) -> State:
    """*directory* as the agent needs it with ``[storage] encrypted = true``: encrypted, its
    key in the kernel. Otherwise the agent must not write a traveller's name into it."""
    if not directory.is_dir():
        raise EncryptionError(
            f"{directory}: missing; with [storage] encrypted = true it is made by"
            " images/encrypt-state.sh (borderlane-edge storage setup), never by the agent"
        )
    state = status(directory)
    if not state.encrypted:
        raise EncryptionError(
            f"{directory}: not encrypted; run images/encrypt-state.sh, or set"
            " [storage] encrypted = false"
        )
    if state.key != "present":
        raise EncryptionError(
            f"{directory}: encrypted but locked (key {state.key}); run borderlane-edge storage"
            " unlock (borderlane-unlock.service) first"
        )
    return state


# -- the ioctls -------------------------------------------------------------------------------


class _NotEncrypted(Exception):
    pass


def _ioctl(directory: Path, request: int, argument: bytes | bytearray, doing: str) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise EncryptionError(f"{directory}: {exc.strerror or exc}") from None
    try:
        fcntl.ioctl(descriptor, request, argument)
    except OSError as exc:
        if request == _GET_POLICY_EX and exc.errno == errno.ENODATA:
            raise _NotEncrypted from None
        raise EncryptionError(f"cannot {doing} {directory}: {_explain(exc)}") from None
    finally:
        os.close(descriptor)


def _explain(exc: OSError) -> str:
    """What an errno from an fscrypt ioctl means for the technician."""
    if exc.errno in (errno.ENOTTY, errno.EOPNOTSUPP):
        return (
            "its file system has no encryption (ext4: tune2fs -O encrypt DEVICE; the kernel"
            " needs CONFIG_FS_ENCRYPTION)"
        )
    if exc.errno in (errno.EPERM, errno.EACCES):
        return "permission denied (run as root)"
    if exc.errno == errno.EEXIST:
        return "it is already encrypted, or has a different policy"
    if exc.errno == errno.ENOTEMPTY:
        return "it is not empty"
    return os.strerror(exc.errno or 0)


def _filesystem_root(directory: Path) -> Path:
    """The mount point of *directory*'s file system: where the key ioctls go. They work on any
    file of it, but not on the encrypted directory itself: the open descriptor would keep it
    busy and the key could never be wholly removed."""
    path = directory.resolve()
    try:
        device = path.stat().st_dev
        while path.parent != path and path.parent.stat().st_dev == device:
            path = path.parent
    except OSError as exc:
        raise EncryptionError(f"{directory}: {exc.strerror or exc}") from None
    return path


def _add_key(directory: Path, key: bytes) -> bytes:
    argument = bytearray(struct.pack("=II32sII32x", _KEY_SPEC_TYPE_IDENTIFIER, 0, b"", len(key), 0))
    argument += key
    try:
        _ioctl(_filesystem_root(directory), _ADD_KEY, argument, f"add the key for {directory} on")
        return bytes(argument[8:24])  # the kernel writes the key's identifier into key_spec
    finally:
        argument[:] = bytes(len(argument))  # the master key no longer in this buffer


def _remove_key(directory: Path, identifier: bytes) -> int:
    argument = bytearray(struct.pack("=II16s16xI20x", _KEY_SPEC_TYPE_IDENTIFIER, 0, identifier, 0))
    _ioctl(
        _filesystem_root(directory), _REMOVE_KEY, argument, f"remove the key of {directory} from"
    )
    (flags,) = struct.unpack_from("=I", argument, 40)
    return flags


def _probe(directory: Path, cipher: str) -> None:
    """Write and read a file: a kernel may accept a policy whose cipher it does not have
    (ENOPKG comes at the first file), and a kiosk must learn that at setup, not with the
    first traveller."""
    probe = directory / ".probe"
    try:
        probe.write_bytes(b"probe")
        ok = probe.read_bytes() == b"probe"
        probe.unlink()
    except OSError as exc:
        with_cipher = f"the kernel cannot use the {cipher} cipher"
        detail = "it lacks it" if exc.errno == errno.ENOPKG else _explain(exc)
        raise EncryptionError(f"{directory}: {with_cipher} ({detail})") from None
    if not ok:
        raise EncryptionError(f"{directory}: a file written there did not read back the same")

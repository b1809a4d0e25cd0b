"""The symmetric primitives BAC and 3DES secure messaging are built from (Doc 9303 Part 11 §9.7).

- :func:`derive_key`: the key derivation function, SHA-1 over ``seed ‖ counter`` with counter 1
  for an encryption key and 2 for a MAC key, cut to a two-key 3DES key with DES parity set.
- :func:`pad` / :func:`unpad`: ISO/IEC 9797-1 padding method 2 (a ``80`` byte, then ``00`` up to
  a multiple of the 8-byte DES block).
- :func:`tdes_encrypt` / :func:`tdes_decrypt`: two-key 3DES in CBC mode with a zero IV.
- :func:`retail_mac`: ISO/IEC 9797-1 MAC algorithm 3 with DES (the "retail MAC"): single-DES
  CBC with the first key half, then a final decrypt/encrypt with the second and first halves.

Everything takes and returns ``bytes``. The 3DES cipher is the ``decrepit`` one of
``cryptography``: 3DES is obsolete, but it is what BAC chips speak.

>>> seed = bytes.fromhex("239AB9CB282DAF66231DC5A4DF6BFBAE")
>>> derive_key(seed, ENC).hex().upper()
'AB94FDECF2674FDFB9B391F85D7F76F2'
>>> pad(b"\\x01\\x1e").hex()
'011e800000000000'
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, modes

try:  # cryptography >= 43 keeps 3DES among the "decrepit" algorithms
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - cryptography 42
    from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES

__all__ = [
    "BLOCK",
    "ENC",
    "MAC",
    "PaddingError",
    "adjust_parity",
    "derive_key",
    "equal",
    "pad",
    "retail_mac",
    "tdes_decrypt",
    "tdes_encrypt",
    "unpad",
]

#: The DES block size; every length here is a multiple of it.
BLOCK = 8
#: KDF counter for an encryption key (K_enc, KS_enc).
ENC = 1
#: KDF counter for a MAC key (K_mac, KS_mac).
MAC = 2

_ZERO_IV = bytes(BLOCK)


class PaddingError(ValueError):
    """Bytes that do not end in ISO/IEC 9797-1 method 2 padding."""


def adjust_parity(key: bytes) -> bytes:
    """Set the low bit of each byte so that every byte has odd parity, as DES keys require.

    >>> adjust_parity(bytes.fromhex("AB94FCEDF2664EDF")).hex().upper()
    'AB94FDECF2674FDF'
    """
    out = bytearray(key)
    for i, byte in enumerate(out):
        high = byte & 0xFE
        out[i] = high | (bin(high).count("1") + 1) % 2
    return bytes(out)


def derive_key(seed: bytes, counter: int) -> bytes:
    """The Doc 9303 KDF for 3DES: ``SHA-1(seed ‖ counter (4 bytes))``, 16 bytes, parity set.

    ``seed`` is 16 bytes (K_seed from the MRZ, or K.IFD xor K.IC); ``counter`` is :data:`ENC`
    or :data:`MAC`. The result is a two-key 3DES key ``Ka ‖ Kb``.
    """
    if len(seed) != 16:
        raise ValueError(f"a 3DES key seed is 16 bytes, got {len(seed)}")
    digest = hashlib.sha1(seed + counter.to_bytes(4, "big")).digest()
    return adjust_parity(digest[:16])


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: append ``80``, then ``00`` to a multiple of 8 bytes.

    Always adds at least one byte, so already-aligned data grows by a whole block.
    """
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def unpad(data: bytes) -> bytes:
    """Remove method 2 padding; raise :class:`PaddingError` if there is none.

    The data must be a non-empty multiple of 8 bytes, and end in ``80`` followed by at most
    seven ``00`` bytes.
    """
    if not data or len(data) % BLOCK:
        raise PaddingError(f"padded data is a non-empty multiple of {BLOCK} bytes")
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise PaddingError("the data does not end in 80 00..00 padding")
    return stripped[:-1]


def _cipher(key: bytes, mode: modes.Mode) -> Cipher[modes.Mode]:
    if len(key) not in (8, 16, 24):
        raise ValueError(f"a DES/3DES key is 8, 16 or 24 bytes, got {len(key)}")
    if len(key) == 8:  # single DES as 3DES with three equal keys
        key = key * 3
    elif len(key) == 16:  # two-key 3DES (Ka, Kb, Ka), spelled out as three keys
        key = key + key[:8]
    return Cipher(TripleDES(key), mode)


def tdes_encrypt(key: bytes, data: bytes) -> bytes:
    """3DES-CBC with a zero IV; ``data`` must already be a multiple of 8 bytes."""
    if len(data) % BLOCK:
        raise ValueError(f"3DES-CBC needs a multiple of {BLOCK} bytes, got {len(data)}")
    encryptor = _cipher(key, modes.CBC(_ZERO_IV)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def tdes_decrypt(key: bytes, data: bytes) -> bytes:
    """Inverse of :func:`tdes_encrypt` (no padding is removed)."""
    if len(data) % BLOCK:
        raise ValueError(f"3DES-CBC needs a multiple of {BLOCK} bytes, got {len(data)}")
    decryptor = _cipher(key, modes.CBC(_ZERO_IV)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES: the 8-byte retail MAC of already padded data.

    ``key`` is ``Ka ‖ Kb`` (16 bytes). All blocks but the last are chained with single DES under
    ``Ka``; the last block goes through ``E_Ka(D_Kb(E_Ka(·)))``, which is the same as the
    standard's "final iteration" (single DES of the whole chain, then decrypt with ``Kb`` and
    encrypt with ``Ka``). The caller pads (:func:`pad`), as Doc 9303 spells the padding out.
    """
    if len(key) != 16:
        raise ValueError(f"the retail MAC key is 16 bytes, got {len(key)}")
    if not data or len(data) % BLOCK:
        raise ValueError(f"MAC input must be padded to a multiple of {BLOCK} bytes")
    ka = key[:8]
    head, last = data[:-BLOCK], data[-BLOCK:]
    chain = _ZERO_IV
    if head:
        chain = tdes_encrypt(ka, head)[-BLOCK:]
    block = bytes(a ^ b for a, b in zip(chain, last, strict=True))
    encryptor = _cipher(key, modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison, for MACs and nonces."""
    return hmac.compare_digest(a, b)

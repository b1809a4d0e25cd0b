"""BAC against Doc 9303 Part 11 Appendix D.2 (keys from the MRZ) and D.3 (authentication)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from edge.documents import mrz
from edge.documents.apdu import CommandApdu
from edge.documents.emrtd.bac import (
    BacChip,
    BacError,
    BacKeys,
    BacTerminal,
    get_challenge_command,
    mrz_information,
    session_from_key_shares,
)
from edge.documents.emrtd.crypto import (
    adjust_parity,
    pad,
    retail_mac,
    tdes_decrypt,
    tdes_encrypt,
    unpad,
)

H = bytes.fromhex

# -- Appendix D.2: document basic access keys ------------------------------------------------
D2_MRZ_INFORMATION = "L898902C<369080619406236"
D2_SHA1 = H("239AB9CB282DAF66231DC5A4DF6BFBAEDF477565")
D2_K_SEED = H("239AB9CB282DAF66231DC5A4DF6BFBAE")
D2_ENC_SHA1 = H("AB94FCEDF2664EDFB9B291F85D7F77F27F2F4A9D")
D2_K_ENC = H("AB94FDECF2674FDFB9B391F85D7F76F2")
D2_MAC_SHA1 = H("7862D9ECE03C1BCD4D77089DCF131442814EA70A")
D2_K_MAC = H("7962D9ECE03D1ACD4C76089DCE131543")

# -- Appendix D.3: authentication and session keys -------------------------------------------
D3_RND_IC = H("4608F91988702212")
D3_RND_IFD = H("781723860C06C226")
D3_K_IFD = H("0B795240CB7049B01C19B33E32804F0B")
D3_S = H("781723860C06C2264608F919887022120B795240CB7049B01C19B33E32804F0B")
D3_E_IFD = H("72C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F2")
D3_M_IFD = H("5F1448EEA8AD90A7")
D3_COMMAND = H(
    "008200002872C29C2371CC9BDB65B779B8E8D37B29ECC154AA56A8799FAE2F498F76ED92F25F1448EEA8AD90A728"
)
D3_RESPONSE = H("46B9342A41396CD7386BF5803104D7CEDC122B9132139BAF2EEDC94EE178534F2F2D235D074D7449")
D3_E_IC = D3_RESPONSE[:32]
D3_M_IC = H("2F2D235D074D7449")
D3_R = H("4608F91988702212781723860C06C2260B4F80323EB3191CB04970CB4052790B")
D3_K_IC = H("0B4F80323EB3191CB04970CB4052790B")
D3_KS_SEED = H("0036D272F5C350ACAC50C3F572D23600")
D3_KS_ENC = H("979EC13B1CBFE9DCD01AB0FED307EAE5")
D3_KS_MAC = H("F1CB1F1FB5ADF208806B89DC579DC1F8")
D3_SSC = H("887022120C06C226")


def scripted(*chunks: bytes) -> Callable[[int], bytes]:
    """A random source that returns the given bytes in order (and checks the sizes asked)."""
    queue = list(chunks)

    def random(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n
        return chunk

    return random


def test_d2_mrz_information_and_key_seed() -> None:
    assert mrz_information("L898902C<", "690806", "940623") == D2_MRZ_INFORMATION
    assert mrz_information("L898902C", "690806", "940623") == D2_MRZ_INFORMATION
    assert hashlib.sha1(D2_MRZ_INFORMATION.encode()).digest() == D2_SHA1
    keys = BacKeys.from_mrz("L898902C<", "690806", "940623")
    assert keys.k_seed == D2_K_SEED


def test_d2_key_derivation_with_parity_adjustment() -> None:
    assert hashlib.sha1(D2_K_SEED + H("00000001")).digest() == D2_ENC_SHA1
    assert hashlib.sha1(D2_K_SEED + H("00000002")).digest() == D2_MAC_SHA1
    assert adjust_parity(D2_ENC_SHA1[:16]) == D2_K_ENC
    assert adjust_parity(D2_MAC_SHA1[:16]) == D2_K_MAC
    keys = BacKeys.from_seed(D2_K_SEED)
    assert (keys.k_enc, keys.k_mac) == (D2_K_ENC, D2_K_MAC)
    assert all(bin(b).count("1") % 2 for b in keys.k_enc + keys.k_mac)


@pytest.mark.parametrize(
    "text",
    [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10",
        "I<UTOL898902C36<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<",
        "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL898902C36UTO7408122F1204159<<<<<<<6",
    ],
    ids=["TD3", "TD1", "TD2"],
)
def test_keys_from_a_parsed_mrz(text: str) -> None:
    document = mrz.parse(text)
    assert document.document_number == "L898902C3"
    assert BacKeys.from_mrz_document(document) == BacKeys.from_mrz("L898902C3", "740812", "120415")


def test_long_document_numbers_are_used_in_full() -> None:
    # A number longer than 9 characters keeps all of them, and the check digit covers them all.
    assert mrz_information("AB1234567890", "690806", "940623").startswith("AB12345678904")


@pytest.mark.parametrize(
    ("number", "birth", "expiry"),
    [("L898902C<", "69086", "940623"), ("L898902C<", "690806", "94062X"), ("L8989/02C", "1", "2")],
)
def test_mrz_information_refuses_bad_fields(number: str, birth: str, expiry: str) -> None:
    with pytest.raises(ValueError):
        mrz_information(number, birth, expiry)


def test_d3_terminal_builds_the_published_external_authenticate() -> None:
    keys = BacKeys.from_seed(D2_K_SEED)
    assert tdes_encrypt(keys.k_enc, D3_S) == D3_E_IFD
    assert retail_mac(keys.k_mac, pad(D3_E_IFD)) == D3_M_IFD
    terminal = BacTerminal(keys, random=scripted(D3_RND_IFD, D3_K_IFD))
    assert get_challenge_command().to_bytes() == H("0084000008")
    command = terminal.external_authenticate(D3_RND_IC)
    assert command.to_bytes() == D3_COMMAND


def test_d3_terminal_checks_the_chip_answer_and_derives_session_keys() -> None:
    keys = BacKeys.from_seed(D2_K_SEED)
    assert retail_mac(keys.k_mac, pad(D3_E_IC)) == D3_M_IC
    assert tdes_decrypt(keys.k_enc, D3_E_IC) == D3_R
    assert D3_R[16:] == D3_K_IC
    assert bytes(a ^ b for a, b in zip(D3_K_IFD, D3_K_IC, strict=True)) == D3_KS_SEED

    terminal = BacTerminal(keys, random=scripted(D3_RND_IFD, D3_K_IFD))
    terminal.external_authenticate(D3_RND_IC)
    session = terminal.complete(D3_RESPONSE)
    assert session.ks_enc == D3_KS_ENC
    assert session.ks_mac == D3_KS_MAC
    assert session.ssc == D3_SSC


def test_d3_chip_side_answers_as_published() -> None:
    keys = BacKeys.from_seed(D2_K_SEED)
    chip = BacChip(keys, random=scripted(D3_RND_IC, D3_K_IC))
    assert chip.challenge() == D3_RND_IC
    answer, session = chip.authenticate(D3_COMMAND[5:-1])
    assert answer == D3_RESPONSE
    assert (session.ks_enc, session.ks_mac, session.ssc) == (D3_KS_ENC, D3_KS_MAC, D3_SSC)


def test_d3_session_from_key_shares() -> None:
    session = session_from_key_shares(D3_K_IFD, D3_K_IC, D3_RND_IC, D3_RND_IFD)
    assert (session.ks_enc, session.ks_mac, session.ssc) == (D3_KS_ENC, D3_KS_MAC, D3_SSC)


def test_terminal_and_chip_agree_with_random_values() -> None:
    keys = BacKeys.from_mrz("X1234567", "010203", "300405")
    chip = BacChip(keys)
    terminal = BacTerminal(keys)
    answer, chip_session = chip.authenticate(terminal.authentication_data(chip.challenge()))
    terminal_session = terminal.complete(answer)
    assert terminal_session.ks_enc == chip_session.ks_enc
    assert terminal_session.ks_mac == chip_session.ks_mac
    assert terminal_session.ssc == chip_session.ssc


def test_chip_refuses_a_terminal_with_the_wrong_mrz() -> None:
    chip = BacChip(BacKeys.from_mrz("L898902C<", "690806", "940623"))
    terminal = BacTerminal(BacKeys.from_mrz("L898902C<", "690806", "940624"))
    with pytest.raises(BacError, match="MAC"):
        chip.authenticate(terminal.authentication_data(chip.challenge()))


def test_chip_refuses_an_answer_to_an_old_challenge() -> None:
    keys = BacKeys.from_seed(D2_K_SEED)
    chip = BacChip(keys)
    terminal = BacTerminal(keys)
    data = terminal.authentication_data(chip.challenge())
    chip.challenge()  # a new challenge replaces the old one
    with pytest.raises(BacError, match="challenge"):
        chip.authenticate(data)


def test_chip_refuses_without_a_challenge_and_challenges_are_single_use() -> None:
    keys = BacKeys.from_seed(D2_K_SEED)
    chip = BacChip(keys)
    terminal = BacTerminal(keys)
    with pytest.raises(BacError, match="GET CHALLENGE"):
        chip.authenticate(bytes(40))
    data = terminal.authentication_data(chip.challenge())
    chip.authenticate(data)
    with pytest.raises(BacError):
        chip.authenticate(data)  # replay


def test_terminal_refuses_a_tampered_or_foreign_answer() -> None:
    keys = BacKeys.from_seed(D2_K_SEED)
    terminal = BacTerminal(keys, random=scripted(D3_RND_IFD, D3_K_IFD))
    terminal.external_authenticate(D3_RND_IC)
    tampered = bytearray(D3_RESPONSE)
    tampered[3] ^= 1
    with pytest.raises(BacError, match="MAC"):
        terminal.complete(bytes(tampered))

    # A correctly MACed answer that does not carry our nonces (a different RND.IFD).
    terminal = BacTerminal(keys, random=scripted(H("0000000000000000"), D3_K_IFD))
    terminal.external_authenticate(D3_RND_IC)
    with pytest.raises(BacError, match="nonces"):
        terminal.complete(D3_RESPONSE)

    with pytest.raises(BacError, match="pending"):
        terminal.complete(D3_RESPONSE)  # each authentication completes once

    terminal = BacTerminal(keys)
    terminal.external_authenticate(D3_RND_IC)
    with pytest.raises(BacError, match="40"):
        terminal.complete(D3_RESPONSE[:39])


def test_padding_method_2() -> None:
    assert pad(b"") == H("8000000000000000")
    assert pad(H("0102030405060708")) == H("01020304050607088000000000000000")
    assert unpad(pad(b"abc")) == b"abc"
    assert unpad(H("8000000000000000" * 2)) == H("8000000000000000")
    too_long = H("00000000000000800000000000000000")  # 80 then eight 00: more than a block
    for bad in (b"", H("0102030405060708"), H("0000000000000000"), too_long, H("80")):
        with pytest.raises(ValueError):
            unpad(bad)


def test_external_authenticate_is_a_case_4_apdu() -> None:
    command = CommandApdu.parse(D3_COMMAND)
    assert (command.ins, command.nc, command.le) == (0x82, 40, 40)

"""Write the seed corpus, ``fuzz/corpus/<target>/``: real-looking inputs to start each target from.

The corpus is kept in the repository (small files); run this again only to remake it, e.g.
after a format changes::

    .venv/bin/python fuzz/make_seeds.py

What it holds: a virtual passport's EF.COM, DG1, DG2 and EF.SOD (ECDSA, RSA-PSS and Brainpool
Document Signers), its DS and CSCA certificates, a CRL and a master list; the ICAO specimen
MRZs (Doc 9303 Parts 4 to 7) as text and as a serial reader sends them; a CBIC's files, its
issuer trust list and a whole card conversation; the contract's example payloads; list files in
each format (tests/data/watchlist), a changes file and a signed delta chunk; kiosk.toml
(images/kiosk.example.toml). Keys are made afresh each time: the targets check structure, and
a signature that no longer verifies is one more case.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz_config as config  # noqa: E402 - the tests directory is on the path just now
import test_fuzz_documents as documents  # noqa: E402
import test_fuzz_watchlist as watchlist  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import mqtt_schemas  # noqa: E402
from edge.documents import tlv  # noqa: E402
from edge.documents.apdu import CommandApdu, ResponseApdu, StatusWord  # noqa: E402
from edge.documents.cbic import SFI_HOLDER, SFI_PORTRAIT, SFI_SIGNATURE  # noqa: E402
from edge.documents.emrtd.lds import LdsFile  # noqa: E402
from edge.documents.emrtd.sm import SecureMessaging  # noqa: E402
from edge.sim.cbic_card import CbicCard  # noqa: E402
from edge.sim.emrtd_chip import EmrtdChip  # noqa: E402
from edge.sim.emrtd_pki import (  # noqa: E402
    SPECIMEN_MRZ,
    issue_passport,
    make_csca,
    make_document_signer,
)

#: Doc 9303's specimens (Parts 4 to 7), as their pages print them.
SPECIMENS = {
    "td3": SPECIMEN_MRZ[:44] + "\n" + SPECIMEN_MRZ[44:],
    "td1": "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\n"
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
    "td2": "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6",
    "mrv-a": "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
    "L8988901C4XXX4009078F96121096ZE184226B<<<<<<",
    "mrv-b": "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<",
}
#: Instructions for the one-node targets (``mutate_der``): node, change, replacement bytes.
INSTRUCTIONS = {
    "replace-root": b"\x00\x00\x00\x30\x00",
    "empty-node-55": b"\x00\x37\x01",
    "empty-node-70": b"\x00\x46\x01",
    "cut-node-20": b"\x00\x14\x02abc",
    "retag-node-9": b"\x00\x09\x03\x04",
    "drop-node-33": b"\x00\x21\x04",
    "integer-node-12": b"\x00\x0c\x00\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
}


def write(target: str, seeds: dict[str, bytes | str]) -> None:
    directory = CORPUS / target
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, data in seeds.items():
        (directory / name).write_bytes(data.encode() if isinstance(data, str) else data)


def conversation(card: object, transmit: object) -> bytes:
    """The card's answers during one read_card, as ScriptedCard replays them (length, bytes)."""
    answers: list[bytes] = []

    def recorded(command: CommandApdu) -> ResponseApdu:
        response = ResponseApdu.parse(card.transmit(command.to_bytes()))  # type: ignore[attr-defined]
        answers.append(response.to_bytes())
        return response

    transmit(recorded)  # type: ignore[operator]
    return b"".join(bytes([len(a)]) + a for a in answers if len(a) < 256)


def documents_seeds() -> None:
    passport = documents.PASSPORT
    files = passport.files
    rsa_csca = make_csca("UT", key_type="rsa")
    other_sods = {
        "sod-rsa-pss": issue_passport(
            SPECIMEN_MRZ,
            b"\xff\xd8\xff\xe0" + bytes(60),
            make_document_signer(rsa_csca, key_type="rsa", pss=True),
            pss=True,
        )[LdsFile.SOD],
        "sod-brainpool-sha512": issue_passport(
            SPECIMEN_MRZ,
            b"\xff\xd8\xff\xe0" + bytes(60),
            make_document_signer(make_csca("DE", key_type="brainpool"), key_type="brainpool"),
            hash_algorithm="sha512",
        )[LdsFile.SOD],
    }
    write("sod", {"sod-ecdsa": documents.SOD, **other_sods})
    for target in ("sod_structure", "certificate_structure", "crl", "master_list"):
        write(target, dict(INSTRUCTIONS))
    write(
        "certificate",
        {
            "ds.der": documents.DS_DER,
            "csca.pem": documents.PKI.csca.certificate.public_bytes(serialization.Encoding.PEM),
            "rsa-csca.der": rsa_csca.certificate.public_bytes(serialization.Encoding.DER),
        },
    )
    write(
        "lds",
        {
            "com": tlv.decode_one(files[LdsFile.COM]).value,
            "dg1": tlv.decode_one(files[LdsFile.DG1]).value,
            "dg2": tlv.decode_one(files[LdsFile.DG2]).value[:600],
        },
    )
    write("tlv", {"com": files[LdsFile.COM], "dg1": files[LdsFile.DG1]})
    write(
        "apdu",
        {
            "select": CommandApdu(
                0x00, 0xA4, 0x04, 0x0C, bytes.fromhex("A0000002471001")
            ).to_bytes(),
            "read-extended": CommandApdu(0x00, 0xB0, 0x00, 0x00, le=1000, extended=True).to_bytes(),
            "response": ResponseApdu(b"\x60\x14", StatusWord.SUCCESS).to_bytes(),
        },
    )
    write("mrz", dict(SPECIMENS))
    image = documents.issue_card(documents.SAMPLE_HOLDER, documents.ISSUER)
    card = CbicCard.from_image(image)
    write(
        "cbic_files",
        {
            "holder": card.files[SFI_HOLDER],
            "signature": card.files[SFI_SIGNATURE],
            **({"portrait": card.files[SFI_PORTRAIT][:600]} if SFI_PORTRAIT in card.files else {}),
        },
    )
    write("trust_list", {"trust.json": documents.TRUST.to_json()})
    keys = bytes(range(16)), bytes(range(16, 32))
    chip_side = SecureMessaging(*keys, 7)
    chip_side.unwrap_command(
        SecureMessaging(*keys, 7).wrap_command(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=8))
    )
    protected = chip_side.wrap_response(ResponseApdu(b"\x60\x14\x5f\x01", StatusWord.SUCCESS))
    write("secure_messaging", {"protected": b"\x04" + protected.to_bytes()})
    write("bac", {"answer": bytes(range(40))})
    lines = SPECIMENS["td3"].encode().replace(b"\n", b"\r\n") + b"\r\n"
    write(
        "serial",
        {
            "crlf": b"\x07" + lines,
            "stx-etx": b"\x09\x02" + SPECIMENS["td1"].encode().replace(b"\n", b"\r") + b"\x03",
        },
    )
    write("atr", {"emrtd": EmrtdChip.ATR, "cbic": CbicCard.ATR})

    def read_with(transmit: object) -> None:
        documents._read(transmit)  # type: ignore[arg-type]

    write(
        "card",
        {
            "cbic": conversation(CbicCard.from_image(image), read_with),
            "passport": conversation(EmrtdChip.from_image(passport), read_with),
        },
    )
    write(
        "chip_files",
        {
            "dg1-raw": b"\x02" + files[LdsFile.DG1],
            "sod-wrapped": b"\x88" + tlv.decode_one(files[LdsFile.SOD]).value,
            "com-raw": b"\x01" + files[LdsFile.COM],
        },
    )
    write("cbic_card", {"holder": card.files[SFI_HOLDER]})


def contract_seeds() -> None:
    names = mqtt_schemas.names()
    examples = {name: mqtt_schemas.examples(name)["valid"][0]["payload"] for name in names}
    write("json", {name: json.dumps(payload) for name, payload in examples.items()})
    write(
        "payload",
        {
            name: bytes([names.index(name)]) + json.dumps(payload).encode()
            for name, payload in examples.items()
        },
    )


def lines(items: Iterable[dict]) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)


def watchlist_seeds() -> None:
    data = ROOT / "tests" / "data" / "watchlist"
    person = {
        "id": "nw-1",
        "kind": "person",
        "names": [{"surname": "CHUN", "given_names": "ELIAS"}, "CHUN, ELIJAH"],
        "birth_date": "1988-11",
        "nationality": ["BLZ"],
        "sex": "M",
        "list": "national-wanted",
        "action": "refer",
    }
    write("list_jsonl", {"list.jsonl": lines([person, watchlist.DOCUMENT])})
    write(
        "list_csv",
        {
            "list.csv": "id,kind,surname,given_names,aliases,birth_date,nationality,sex,list,"
            "number,issuing_state,status\n"
            'nw-1,person,CHUN,ELIAS,"CHUN, ELIJAH|CHUN, ELI",1988-11,BLZ;GTM,M,national,,,\n'
            "d1,document,,,,,,,interpol-sltd,A0000001,MEX,lost\n"
        },
    )
    write("list_un_xml", {"consolidated.xml": (data / "un-consolidated.xml").read_bytes()})
    write("list_ftm", {"entities.ftm.json": (data / "opensanctions.ftm.json").read_bytes()})
    changes = [
        {"op": "add", "kind": "person", "entry_id": "nw-1", "entry": person_entry(person)},
        {"op": "remove", "kind": "document", "entry_id": "d1"},
    ]
    write("changes", {"changes.jsonl": lines(changes)})
    write(
        "chunk",
        {
            "as-is": b"\x00" + watchlist.GENUINE_LINE,
            "signed-again": b"\x01" + watchlist.GENUINE_LINE,
        },
    )


def person_entry(record: dict) -> dict:
    _, _, entry = watchlist.entry_from_record(record)
    return entry


def config_seeds() -> None:
    write("kiosk_toml", {"kiosk.example.toml": config.EXAMPLE_TEXT})


if __name__ == "__main__":
    documents_seeds()
    contract_seeds()
    watchlist_seeds()
    config_seeds()
    made = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in made)
    print(f"{len(made)} seeds in {len({p.parent for p in made})} targets, {size:,} bytes")

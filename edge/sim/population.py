"""A synthetic population of travellers for a simulated lane, deterministic by seed.

:func:`make_population` writes everything a simulated kiosk and its travellers need into one
directory; :meth:`Population.load` reads it back::

    population = make_population("pop", 500, seed=7, site="bz-santa-elena")
    population.trust_dir / "cbic-issuers"      # the kiosk's CBIC trust list (edge.trust)
    population.trust_dir / "csca"              # the kiosk's CSCA store (edge.trust)
    population.watchlist_path                  # `borderlane-edge watchlist import` reads it
    traveller = population.travellers[0]
    card = population.card_for(traveller)      # a CbicCard or EmrtdChip, issued now

Layout of the directory::

    population.json          what was made: seed, site, date, counts (no personal data)
    travellers.jsonl         one traveller per line: kind, holder data, MRZ, expected outcome
    watchlist.jsonl          the listed travellers, as a list would write them, and filler
    issuer/cbic/<key id>.key CBIC issuer keys (private: this is a simulator), and .pem
    issuer/passport/<CC>/    one test ePassport PKI per issuing state (csca, ds: keys, certs)
    trust/cbic-issuers/      the issuers' public keys, <key id>.pem: a trust list directory
    trust/csca/<CC>.pem      the CSCA certificates a kiosk trusts

Who is in it. Most travellers should pass: a CBIC valid at ``site`` or a valid passport, and
not listed. A share (``expired``) hold an expired document, a share of the CBIC holders
(``wrong_site``) a card valid only at other crossings, and a share (``watchlisted``) are on the
watchlist with their full birth date, as national wanted and immigration lists give it; their
entries spell the name as a list does (the document's spelling, another transliteration, the
name in its own script as an alias), and carry an action: ``refer``, ``deny`` (the contract's
action for an arrest warrant: "wait here for an officer") or ``alert``. Each traveller has one
reason to be referred at most, so the expected outcome (:class:`Expectation`, in the lane's
reason codes, under the default lane policy) is exact. Filler persons (a few thousand, from
:func:`edge.sim.watchlist.generate_persons`) and lost or stolen documents make screening
realistic: the matcher has namesakes to tell apart.

Cards are not stored: a CBIC is issued from its holder data when presented (fresh card key,
signed by the population's issuer), a passport chip from its MRZ under its state's PKI. So
``travellers.jsonl`` and ``watchlist.jsonl`` depend only on the seed, the size, the shares, the
site and the date; keys and certificates are new for every population.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from edge.documents.mrz import compose
from edge.sim.cbic_card import CbicCard
from edge.sim.cbic_issue import IssueError as CbicIssueError
from edge.sim.cbic_issue import IssuerKey, create_issuer, issue_card, load_issuer, save_issuer
from edge.sim.emrtd_chip import (
    SPECIMEN_FACE,
    EmrtdChip,
    PassportPki,
    country_for_state,
    issue_passport_image,
    load_or_create_pki,
)
from edge.sim.emrtd_chip import IssueError as PassportIssueError
from edge.sim.watchlist import (
    Profile,
    generate_documents,
    generate_persons,
    new_profile,
    positive_query,
)
from mqtt_schemas import identifiers

__all__ = [
    "DEFAULT_FILLER",
    "DEFAULT_SITE",
    "FORMAT",
    "OTHER_SITES",
    "Expectation",
    "Population",
    "PopulationError",
    "Traveller",
    "make_population",
]

#: The ``format`` member of ``population.json``.
FORMAT = "borderlane-population@1"
DEFAULT_SITE = "bz-santa-elena"
#: Crossing points a wrong-site card is valid at instead (whichever is not the lane's site).
OTHER_SITES = ("bz-benque-viejo", "gt-melchor-de-mencos", "mx-subteniente-lopez", "bz-jalacte")
#: Filler persons on the watchlist: enough namesakes for the matcher to have to tell apart.
DEFAULT_FILLER = 3000

#: The state the crossing is in: its CSCA is trusted even with no passport in the population.
HOST_COUNTRY = "BZ"
#: CBIC issuers of the population, by the state they issue for.
CBIC_ISSUERS = {"BLZ": "bz-cbic-test-1", "MEX": "mx-cbic-test-1"}

Kind = Literal["cbic", "passport"]

# Who crosses at a Belize-Mexico land border: mostly Hispanic and English names, some others
# (the watchlist generator's cultures).
_CULTURES = ("hispanic", "english", "chinese", "arabic", "slavic", "greek")
_CULTURE_WEIGHTS = (55, 25, 6, 6, 4, 4)
_COMMUNITIES = (
    "Corozal Town",
    "Santa Elena",
    "Chetumal",
    "Benque Viejo del Carmen",
    "San Ignacio",
    "Orange Walk Town",
    "Subteniente Lopez",
)
_CATEGORIES = ("resident-worker", "student", "frequent-crosser", "trader")
# Watchlist listings for the travellers on it: list, category, action, weight.
_LISTINGS = (
    ("national-wanted", "wanted", "refer", 30),
    ("deportation-order", "deportation-order", "refer", 15),
    ("interpol-red", "wanted", "deny", 15),
    ("national-wanted", "arrest-warrant", "deny", 15),
    ("missing-persons", "missing-person", "alert", 25),
)
_REASONS = {"refer": "watchlist-hit", "deny": "watchlist-deny", "alert": "watchlist-alert"}
# Letters no OCR folding turns into digits (the matcher folds O/0, I/1, B/8, S/5...): our
# document numbers can never collide with the filler's lost and stolen documents.
_SAFE_LETTERS = "ACEFHJKLMNPRTUVWXY"


class PopulationError(ValueError):
    """A population that cannot be made or loaded; the message names the file or value."""


@dataclass(frozen=True)
class Expectation:
    """What the lane should decide for a traveller, under the default lane policy.

    ``reason`` is the lane's decision reason code (``edge.lane.policy``) that refers the
    traveller: ``watchlist-hit``, ``watchlist-deny``, ``watchlist-alert``,
    ``document-expired`` or ``not-valid-at-site``; None for a pass.
    """

    outcome: Literal["pass", "refer"]
    reason: str | None = None

    @property
    def label(self) -> str:
        """``pass`` or ``refer:<reason>``: the expected outcome class, no personal data."""
        return self.outcome if self.reason is None else f"{self.outcome}:{self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "reason": self.reason}


@dataclass(frozen=True)
class Traveller:
    """One traveller: who they are, the document they carry, what the lane should decide.

    ``holder`` is the CBIC holder JSON (``edge.sim.cbic_issue``) for a card, and the data
    page's fields for a passport; ``mrz`` the passport's printed MRZ (lines joined by
    ``\\n``); ``issuer`` the CBIC issuer key id or the passport PKI's country (alpha-2);
    ``listed_as`` the watchlist entry id when the traveller is listed.
    """

    number: int
    kind: Kind
    holder: Mapping[str, Any]
    expect: Expectation
    issuer: str
    mrz: str | None = None
    listed_as: str | None = None

    def to_json(self) -> str:
        document: dict[str, Any] = {
            "number": self.number,
            "kind": self.kind,
            "expect": self.expect.to_dict(),
            "issuer": self.issuer,
            "holder": dict(self.holder),
        }
        if self.mrz is not None:
            document["mrz"] = self.mrz.splitlines()
        if self.listed_as is not None:
            document["listed_as"] = self.listed_as
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Traveller:
        expect = document["expect"]
        kind = document["kind"]
        if kind not in ("cbic", "passport"):
            raise ValueError(f"kind is cbic or passport, not {kind!r}")
        if expect["outcome"] not in ("pass", "refer"):
            raise ValueError(f"expect.outcome is pass or refer, not {expect['outcome']!r}")
        mrz = document.get("mrz")
        if kind == "passport" and not mrz:
            raise ValueError("a passport traveller needs its mrz")
        return cls(
            number=int(document["number"]),
            kind=kind,
            holder=dict(document["holder"]),
            expect=Expectation(expect["outcome"], expect.get("reason")),
            issuer=str(document["issuer"]),
            mrz="\n".join(mrz) if mrz else None,
            listed_as=document.get("listed_as"),
        )


@dataclass
class Population:
    """A population directory, loaded (see the module for its layout)."""

    directory: Path
    seed: int
    site: str
    today: date
    travellers: list[Traveller]
    counts: dict[str, int] = field(default_factory=dict)
    _pkis: dict[str, PassportPki] = field(default_factory=dict, init=False, repr=False)

    # -- where things are

    @property
    def trust_dir(self) -> Path:
        """``cbic-issuers/`` (edge.trust.load_trust_list) and ``csca/`` (load_csca_store)."""
        return self.directory / "trust"

    @property
    def cbic_trust_dir(self) -> Path:
        return self.trust_dir / "cbic-issuers"

    @property
    def csca_dir(self) -> Path:
        return self.trust_dir / "csca"

    @property
    def watchlist_path(self) -> Path:
        return self.directory / "watchlist.jsonl"

    @property
    def travellers_path(self) -> Path:
        return self.directory / "travellers.jsonl"

    # -- loading

    @classmethod
    def load(cls, directory: Path | str) -> Population:
        """Read a directory written by :func:`make_population`; errors name the file."""
        directory = Path(directory)
        manifest_path = directory / "population.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PopulationError(f"{directory}: not a population (no population.json)") from None
        except (OSError, ValueError) as exc:
            raise PopulationError(f"{manifest_path}: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise PopulationError(f"{manifest_path}: format is not {FORMAT!r}")
        travellers = []
        path = directory / "travellers.jsonl"
        try:
            with path.open(encoding="utf-8") as lines:
                for line_number, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        travellers.append(Traveller.from_dict(json.loads(line)))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise PopulationError(f"{path}:{line_number}: {exc}") from None
        except OSError as exc:
            raise PopulationError(f"{path}: {exc.strerror or exc}") from None
        if not travellers:
            raise PopulationError(f"{path}: no traveller")
        try:
            return cls(
                directory=directory,
                seed=int(manifest["seed"]),
                site=str(manifest["site"]),
                today=date.fromisoformat(manifest["today"]),
                travellers=travellers,
                counts=dict(manifest.get("counts", {})),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise PopulationError(f"{manifest_path}: lacks or garbles {exc}") from None

    # -- cards

    @cached_property
    def _issuers(self) -> dict[str, IssuerKey]:
        keys = sorted((self.directory / "issuer" / "cbic").glob("*.key"))
        try:
            return {path.stem: load_issuer(path) for path in keys}
        except (CbicIssueError, OSError) as exc:
            raise PopulationError(f"{self.directory}/issuer/cbic: {exc}") from None

    def _pki(self, country: str) -> PassportPki:
        if country not in self._pkis:
            where = self.directory / "issuer" / "passport" / country
            if not (where / "csca.pem").exists():
                raise PopulationError(f"{where}: no passport PKI for {country}")
            try:
                self._pkis[country] = load_or_create_pki(where, country)[0]
            except PassportIssueError as exc:
                raise PopulationError(str(exc)) from None
        return self._pkis[country]

    @cached_property
    def _face(self) -> bytes:
        return SPECIMEN_FACE.read_bytes()

    def card_for(
        self, traveller: Traveller, *, pull_after: int | None = None
    ) -> CbicCard | EmrtdChip:
        """The traveller's document as a virtual card, issued now (see the module).

        ``pull_after``: the card leaves the reader when command APDU ``pull_after + 1`` arrives
        (wire its ``unplug`` to the vpcd link): a traveller pulling it mid-read.
        """
        try:
            if traveller.kind == "cbic":
                issuer = self._issuers.get(traveller.issuer)
                if issuer is None:
                    raise PopulationError(
                        f"no CBIC issuer key {traveller.issuer!r} in {self.directory}"
                    )
                # the same specimen face as the passports' DG2: the officer sees a portrait
                image = issue_card(traveller.holder, issuer, portrait=self._face)
                return CbicCard.from_image(image, pull_after=pull_after)
            assert traveller.mrz is not None
            passport = issue_passport_image(traveller.mrz, pki=self._pki(traveller.issuer))
            return EmrtdChip.from_image(passport, pull_after=pull_after)
        except (CbicIssueError, PassportIssueError) as exc:
            where = f"{self.travellers_path}: traveller {traveller.number}"
            raise PopulationError(f"{where}: cannot issue the document: {exc}") from None


# -- making one ---------------------------------------------------------------------------------


def _shares(size: int, **fractions: float) -> dict[str, int]:
    counts = {}
    for name, fraction in fractions.items():
        if not 0 <= fraction <= 1:
            raise PopulationError(f"{name} is a share in 0..1, got {fraction!r}")
        counts[name] = round(size * fraction)
    if sum(counts.values()) > size:
        raise PopulationError(
            f"the shares ({', '.join(f'{k} {v}' for k, v in fractions.items())}) exceed 1"
        )
    return counts


def _card_name(text: str) -> str:
    """How a card prints a name: ``DE LA CRUZ`` -> ``De La Cruz``, ``O'BRIEN`` -> ``O'Brien``."""
    return " ".join("-".join(p.capitalize() for p in word.split("-")) for word in text.split())


def _mrz_name(text: str) -> str:
    """A name as an MRZ can hold it (Doc 9303: apostrophes dropped, hyphens become fillers)."""
    return "".join(c for c in text.upper() if c.isalpha() or c in " -")


def _date_between(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


class _Maker:
    """The random choices of one population, in a fixed order (so a seed fixes them all)."""

    def __init__(self, seed: int, site: str, today: date) -> None:
        self.rng = random.Random(f"population-{seed}")
        self.site = site
        self.today = today
        self.other_sites = [s for s in OTHER_SITES if s != site]
        self.used_numbers: set[str] = set()

    def profile(self) -> Profile:
        culture = self.rng.choices(_CULTURES, weights=_CULTURE_WEIGHTS)[0]
        return new_profile(self.rng, culture)

    def number(self, prefix: str, digits: int) -> str:
        while True:
            second = "" if len(prefix) > 1 else self.rng.choice(_SAFE_LETTERS)
            candidate = prefix + second + f"{self.rng.randrange(10**digits):0{digits}d}"
            if candidate not in self.used_numbers:
                self.used_numbers.add(candidate)
                return candidate

    def expiry(self, expired: bool) -> tuple[date, date]:
        """(issue date, expiry date): valid for at least a year from today, or expired."""
        if expired:
            expiry = self.today - timedelta(days=self.rng.randint(1, 400))
        else:
            expiry = self.today + timedelta(days=self.rng.randint(400, 5 * 365))
        return expiry - timedelta(days=5 * 365), expiry

    def cbic(self, profile: Profile, *, expired: bool, wrong_site: bool) -> tuple[str, dict]:
        state = self.rng.choice(sorted(CBIC_ISSUERS))
        issued, expiry = self.expiry(expired)
        if wrong_site:
            valid_at = self.rng.sample(self.other_sites, self.rng.randint(1, 2))
        else:
            valid_at = [self.site, *self.rng.sample(self.other_sites, self.rng.randint(0, 1))]
        surname, given = profile.written()
        holder = {
            "card_number": self.number("CB", 8),
            "issuing_state": state,
            "surname": _card_name(surname),
            "given_names": _card_name(given),
            "date_of_birth": profile.birth_date,
            "sex": profile.sex,
            "nationality": profile.nationality[0],
            "community": self.rng.choice(_COMMUNITIES),
            "category": self.rng.choice(_CATEGORIES),
            "valid_at": valid_at,
            "issue_date": issued.isoformat(),
            "expiry_date": expiry.isoformat(),
        }
        return CBIC_ISSUERS[state], holder

    def passport(self, profile: Profile, *, expired: bool) -> tuple[str, dict, str]:
        state = profile.nationality[0]
        issued, expiry = self.expiry(expired)
        surname, given = profile.written()
        given_parts = _mrz_name(given).split()
        number = self.number(self.rng.choice(_SAFE_LETTERS), 7)
        while True:  # a name too long for the MRZ: the issuer drops trailing given names
            try:
                mrz = compose(
                    "TD3",
                    issuing_state=state,
                    surname=_mrz_name(surname),
                    given_names=" ".join(given_parts),
                    document_number=number,
                    nationality=state,
                    birth_date=date.fromisoformat(profile.birth_date),
                    sex=profile.sex,
                    expiry_date=expiry,
                )
                break
            except ValueError:
                if not given_parts:
                    raise
                given_parts.pop()
        holder = {
            "document_number": number,
            "issuing_state": state,
            "surname": _mrz_name(surname),
            "given_names": " ".join(given_parts),
            "date_of_birth": profile.birth_date,
            "sex": profile.sex,
            "nationality": state,
            "issue_date": issued.isoformat(),
            "expiry_date": expiry.isoformat(),
        }
        return country_for_state(state), holder, mrz

    def listing(self, profile: Profile, entry_id: str) -> dict[str, Any]:
        """The watchlist record of a listed traveller, written as a list would."""
        list_name, category, action = self.rng.choices(
            [entry[:3] for entry in _LISTINGS], weights=[entry[3] for entry in _LISTINGS]
        )[0]
        surname, given = profile.written()
        names = [{"surname": surname, "given_names": given}]
        # Lists spell names from other scripts their own way (first, often), and add the name
        # in its own script. The document's spelling stays among them: a listing the matcher
        # could miss would make the population's expectations wrong, not the matcher.
        variant = positive_query(self.rng, profile, "transliteration", entry_id)
        if variant is not None and self.rng.random() < 0.6:
            spelling = {"surname": variant["surname"], "given_names": variant["given_names"]}
            names.insert(self.rng.randrange(2), spelling)
        script = profile.script_name()
        if script is not None and self.rng.random() < 0.5:
            names.append({"surname": script[0], "given_names": script[1]})
        return {
            "id": entry_id,
            "kind": "person",
            "names": [{k: v for k, v in n.items() if v} for n in names],
            "birth_date": profile.birth_date,
            "nationality": list(profile.nationality),
            "sex": profile.sex,
            "list": list_name,
            "category": category,
            "action": action,
        }


def make_population(
    directory: Path | str,
    size: int,
    *,
    seed: int,
    watchlisted: float = 0.05,
    passports: float = 0.3,
    expired: float = 0.03,
    wrong_site: float = 0.03,
    site: str = DEFAULT_SITE,
    filler: int = DEFAULT_FILLER,
    today: date | None = None,
) -> Population:
    """Write a population of ``size`` travellers into ``directory`` (see the module).

    The shares are of all travellers; ``wrong_site`` cards are CBICs (a passport is valid at
    every crossing), so it is taken among the CBIC holders. ``filler`` persons (and a tenth as
    many lost or stolen documents) join the listed travellers on the watchlist. ``today``
    (default: today) is the date the documents' validity is reckoned from. Raises
    :class:`PopulationError` for impossible shares or a directory that already holds one.
    """
    directory = Path(directory)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise PopulationError(f"size is a number of travellers (1 or more), got {size!r}")
    if isinstance(filler, bool) or not isinstance(filler, int) or filler < 0:
        raise PopulationError(f"filler is a number of persons (0 or more), got {filler!r}")
    if not isinstance(site, str) or not identifiers.NAME.fullmatch(site):
        raise PopulationError(f"site is a crossing point id (a-z, 0-9, .-_), got {site!r}")
    if (directory / "population.json").exists():
        raise PopulationError(f"{directory} already holds a population; choose a new directory")
    today = today or date.today()
    share = _shares(size, watchlisted=watchlisted, expired=expired, wrong_site=wrong_site)
    passport_count = _shares(size, passports=passports)["passports"]
    if share["wrong_site"] > size - passport_count:
        raise PopulationError("wrong_site cards are CBICs: more than the CBIC holders asked for")
    maker = _Maker(seed, site, today)
    # Who is who, by position: passports first, shuffled; then each reason to refer.
    kinds: list[Kind] = ["passport"] * passport_count + ["cbic"] * (size - passport_count)
    maker.rng.shuffle(kinds)
    cbic_positions = [i for i, kind in enumerate(kinds) if kind == "cbic"]
    wrong_site_positions = set(maker.rng.sample(cbic_positions, share["wrong_site"]))
    others = [i for i in range(size) if i not in wrong_site_positions]
    chosen = maker.rng.sample(others, share["watchlisted"] + share["expired"])
    listed_positions = set(chosen[: share["watchlisted"]])
    expired_positions = set(chosen[share["watchlisted"] :])

    travellers: list[Traveller] = []
    listings: list[dict[str, Any]] = []
    for number, kind in enumerate(kinds):
        profile = maker.profile()
        is_expired = number in expired_positions
        if kind == "cbic":
            issuer, holder = maker.cbic(
                profile, expired=is_expired, wrong_site=number in wrong_site_positions
            )
            mrz = None
        else:
            issuer, holder, mrz = maker.passport(profile, expired=is_expired)
        listed_as = None
        expect = Expectation("pass")
        if number in listed_positions:
            listed_as = f"sim-listed-{seed}-{number:06d}"
            listing = maker.listing(profile, listed_as)
            listings.append(listing)
            expect = Expectation("refer", _REASONS[listing["action"]])
        elif is_expired:
            expect = Expectation("refer", "document-expired")
        elif number in wrong_site_positions:
            expect = Expectation("refer", "not-valid-at-site")
        travellers.append(Traveller(number, kind, holder, expect, issuer, mrz, listed_as))

    counts = dict(Counter(t.kind for t in travellers)) | {
        "listed": len(listings),
        "expired": len(expired_positions),
        "wrong_site": len(wrong_site_positions),
        "pass": sum(t.expect.outcome == "pass" for t in travellers),
        "filler_persons": filler,
        "filler_documents": filler // 10,
    }
    _write(directory, travellers, listings, seed=seed, filler=filler)
    _write_keys(directory, travellers)
    manifest = {
        "format": FORMAT,
        "seed": seed,
        "site": site,
        "today": today.isoformat(),
        "size": size,
        "counts": counts,
    }
    (directory / "population.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Population(directory, seed, site, today, travellers, counts)


def _write(
    directory: Path,
    travellers: Iterable[Traveller],
    listings: list[dict[str, Any]],
    *,
    seed: int,
    filler: int,
) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "travellers.jsonl").open("w", encoding="utf-8") as out:
            for traveller in travellers:
                out.write(traveller.to_json() + "\n")
        with (directory / "watchlist.jsonl").open("w", encoding="utf-8") as out:
            for record in listings:
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            for record, _ in generate_persons(filler, seed):
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            for line in generate_documents(filler // 10, seed):
                out.write(line + "\n")
    except OSError as exc:
        raise PopulationError(f"cannot write {exc.filename or directory}: {exc.strerror}") from None


def _write_keys(directory: Path, travellers: list[Traveller]) -> None:
    """Issuer keys (private, under ``issuer/``) and the kiosk's trust files (``trust/``)."""
    trust_issuers = directory / "trust" / "cbic-issuers"
    trust_csca = directory / "trust" / "csca"
    try:
        trust_issuers.mkdir(parents=True, exist_ok=True)
        trust_csca.mkdir(parents=True, exist_ok=True)
        for key_id in sorted(CBIC_ISSUERS.values()):
            issuer = create_issuer(key_id)
            save_issuer(issuer, directory / "issuer" / "cbic")
            (trust_issuers / f"{key_id}.pem").write_bytes(issuer.public_pem())
        # The host state's CSCA always: a kiosk's CSCA store must not be empty.
        countries = {HOST_COUNTRY} | {t.issuer for t in travellers if t.kind == "passport"}
        for country in sorted(countries):
            pki, _ = load_or_create_pki(directory / "issuer" / "passport" / country, country)
            (trust_csca / f"{country}.pem").write_bytes(pki.csca.pem)
    except OSError as exc:
        raise PopulationError(f"cannot write {exc.filename or directory}: {exc.strerror}") from None
    except PassportIssueError as exc:
        raise PopulationError(str(exc)) from None

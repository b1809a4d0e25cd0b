"""The console's user accounts: who may log in, with which agency, role, clearance level and
posts, and how a login is checked. The command line (``borderlane-console users``) and the web
(login page, the admins' user pages) are thin layers over :class:`Accounts`.

::

    accounts = Accounts(open_database("console.db"), load_settings("console.toml"))
    accounts.create("msantos", "Maria Santos", agency="immigration", role="officer", level=2,
                    posts=["bz-santa-elena"], password="chosen by the admin")
    account = accounts.login("msantos", "chosen by the admin", address="10.1.2.3")
    account.must_change_password     # True: the first login asks for a password of her own
    accounts.change_password(account.id, "chosen by the admin", "her own passphrase")
    token = accounts.issue_token("msantos")   # shown once; only its SHA-256 is kept
    accounts.by_token(token).principal()      # what console.access decides on

How passwords are kept, and why:

- **argon2id** (argon2-cffi's defaults, RFC 9106's second recommended profile: 64 MiB, 3
  passes, 4 lanes), memory-hard so a stolen ``users`` table is slow to guess on a GPU. A hash
  made with weaker parameters is replaced at the next successful login
  (:meth:`PasswordHasher.check_needs_rehash`), so raising the parameters needs no migration.
- **No user enumeration.** Every refusal (unknown user, wrong password, locked, disabled) raises
  the same :class:`LoginRefused` with the same message; an unknown user's password is still
  checked, against a dummy hash made with the same parameters, so the answer takes as long.
  Why it was refused is in :attr:`LoginRefused.reason` and the log, never shown to the user.
- **Lockout.** Each refused login is a row in ``login_failures`` (username, address, time,
  never the password). When an account *or* an address has ``lockout.failures`` rows within
  ``lockout.window_minutes``, logins for it are refused, even with the right password, until
  the window slides past them: per account stops guessing one password from many addresses,
  per address stops one address trying one password on many accounts. Attempts made while
  locked count too, so an attack that keeps going stays locked out. A successful login clears
  the account's rows (not the address's: one good account must not unlock an address).
- **API tokens** are random (256 bits), shown once, and stored as their SHA-256 only: a token is
  already unguessable, so a fast hash suffices, and the lookup needs no per-user salt.
- **Sessions end when the password changes**: :attr:`Account.stamp` changes with it, and the
  web layer keeps the stamp in the session and compares it on every request.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mqtt_schemas.envelope import format_time
from mqtt_schemas.identifiers import NAME

from .access import LEVELS, ROLES, Principal
from .access.policy import ALL_POSTS
from .settings import Settings
from .store.schema import login_failures, users

log = logging.getLogger("borderlane.console.accounts")

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``); tests pass one they can move."""

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
"""Long passphrases are welcome; the cap only stops a megabyte "password" tying up a core."""
TOKEN_PREFIX = "blc_"
"""API tokens start with it, so a leaked one is recognisable (secret scanners, logs)."""
REFUSED = "Wrong username or password. After repeated failures logging in is paused for a while."
"""The one message for every refused login, whatever the reason (no user enumeration)."""


class AccountError(ValueError):
    """A request the accounts cannot carry out; the message says why, in the user's terms."""


class LoginRefused(Exception):
    """A login was refused. ``str()`` is :data:`REFUSED` whatever happened; :attr:`reason` (for
    the log and tests only) says what did."""

    def __init__(self, reason: str) -> None:
        super().__init__(REFUSED)
        self.reason = reason


@dataclass(frozen=True)
class Account:
    """One user, as the console knows them (never with the password hash)."""

    id: int
    username: str
    display_name: str
    agency: str
    role: str
    level: int
    posts: frozenset[str]
    must_change_password: bool
    disabled: bool
    has_token: bool
    created_at: str
    password_changed_at: str
    stamp: str
    """Changes whenever the password does (a digest of its hash, which has a fresh salt each
    time): the web layer keeps it in the session, and a session made before is no longer valid."""

    def principal(self) -> Principal:
        """The account as the access policy sees it."""
        return Principal(
            user_id=self.id,
            username=self.username,
            agency=self.agency,
            role=self.role,
            level=self.level,
            posts=self.posts,
        )


def _account(row: Mapping[str, Any]) -> Account:
    return Account(
        id=int(row["id"]),
        username=row["username"],
        display_name=row["display_name"],
        agency=row["agency"],
        role=row["role"],
        level=int(row["level"]),
        posts=frozenset(json.loads(row["posts"])),
        must_change_password=bool(row["must_change_password"]),
        disabled=bool(row["disabled"]),
        has_token=row["api_token_hash"] is not None,
        created_at=row["created_at"],
        password_changed_at=row["password_changed_at"] or row["created_at"],
        stamp=hashlib.sha256(row["password_hash"].encode()).hexdigest()[:16],
    )


def token_digest(token: str) -> str:
    """What is stored of an API token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normal_username(username: str) -> str:
    """Usernames are compared in lower case without surrounding spaces."""
    return username.strip().lower()


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    """A hash of nothing anybody knows, with the hasher's parameters: verifying an unknown
    user's password against it costs what verifying a real one does."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return hasher.hash(secrets.token_urlsafe(32))


class Accounts:
    """The accounts in a console database.

    *engine* writes (and reads when no *reader* is given); the web app passes its read-only
    engine as *reader* so looking up the user of each request never takes SQLite's write lock.
    *settings* give the agencies an account may belong to and the lockout limits. *hasher*
    defaults to argon2-cffi's :class:`PasswordHasher` defaults; *clock* to ``time.time``.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        *,
        reader: Engine | None = None,
        hasher: PasswordHasher | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.engine = engine
        self.reader = reader or engine
        self.settings = settings or Settings()
        self.hasher = hasher or PasswordHasher()
        self.clock = clock

    # -- reading ------------------------------------------------------------------------------

    def all_accounts(self) -> list[Account]:
        """Every account, by username."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).mappings()
            return [_account(row) for row in rows]

    def get(self, user_id: int) -> Account | None:
        """The account with id *user_id*, disabled or not; None if there is none."""
        with self.reader.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
        return _account(row) if row else None

    def find(self, username: str) -> Account | None:
        """The account called *username* (any case), or None."""
        with self.reader.connect() as conn:
            row = self._row(conn, normal_username(username))
        return _account(row) if row else None

    def by_token(self, token: str) -> Account | None:
        """The enabled account whose API token is *token*, or None (unknown, revoked, disabled)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
            return None
        with self.reader.connect() as conn:
            row = (
                conn.execute(select(users).where(users.c.api_token_hash == token_digest(token)))
                .mappings()
                .first()
            )
        if row is None or row["disabled"]:
            return None
        return _account(row)

    # -- changing -----------------------------------------------------------------------------

    def create(
        self,
        username: str,
        display_name: str,
        *,
        agency: str,
        role: str,
        level: int,
        posts: Iterable[str] = (),
        password: str,
        must_change_password: bool = True,
    ) -> Account:
        """Add an account. *password* is the first one, chosen by whoever creates the account;
        with *must_change_password* (the default) the user must replace it at the first login.
        Raises :class:`AccountError` naming what is wrong."""
        name = normal_username(username)
        if not NAME.fullmatch(name):
            raise AccountError(
                f"username {username!r}: a lower-case letter, then up to 63 of a-z 0-9 . _ -"
            )
        display = " ".join(display_name.split())
        if not display or len(display) > 200:
            raise AccountError("display name: 1 to 200 characters")
        self._check_profile(agency, role, level)
        post_list = self._check_posts(posts)
        self._check_password(password, name)
        now = self._now()
        row = {
            "username": name,
            "display_name": display,
            "agency": agency,
            "role": role,
            "level": level,
            "posts": json.dumps(post_list),
            "password_hash": self.hasher.hash(password),
            "must_change_password": int(must_change_password),
            "disabled": 0,
            "api_token_hash": None,
            "created_at": now,
            "password_changed_at": now,
        }
        try:
            with self.engine.begin() as conn:
                if self._row(conn, name) is not None:
                    raise AccountError(f"user {name!r} already exists")
                user_id = conn.execute(insert(users).values(row).returning(users.c.id)).scalar()
        except IntegrityError:  # created by someone else between the check and the insert
            raise AccountError(f"user {name!r} already exists") from None
        log.info("account %r created (%s, %s, level %d)", name, agency, role, level)
        assert user_id is not None
        return _account({**row, "id": user_id})

    def set_password(self, username: str, password: str, *, must_change: bool = True) -> Account:
        """An admin sets *username*'s password (a reset); with *must_change* the user must
        replace it at the next login. The user's sessions end (the stamp changes)."""
        account = self._existing(username)
        self._check_password(password, account.username)
        self._store_password(account.id, self.hasher.hash(password), must_change)
        log.info("password of %r set by an administrator", account.username)
        return self._existing(username)

    def change_password(self, user_id: int, current: str, new: str) -> Account:
        """The user replaces their own password, proving they know *current*."""
        with self.reader.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
        if row is None or row["disabled"]:
            raise AccountError("no such account")
        if not self._verify(row["password_hash"], current):
            raise AccountError("the current password is not right")
        if new == current:
            raise AccountError("the new password must differ from the current one")
        self._check_password(new, row["username"])
        self._store_password(user_id, self.hasher.hash(new), False)
        log.info("%r changed their password", row["username"])
        changed = self.get(user_id)
        assert changed is not None
        return changed

    def disable(self, username: str) -> Account:
        """Stop *username* logging in or using their token; their sessions end at their next
        request. The last enabled admin cannot be disabled (nobody could manage accounts)."""
        account = self._existing(username)
        with self.engine.begin() as conn:
            if account.role == "admin" and not account.disabled:
                admins = conn.execute(
                    select(func.count())
                    .select_from(users)
                    .where(users.c.role == "admin", users.c.disabled == 0)
                ).scalar_one()
                if admins <= 1:
                    raise AccountError(f"{account.username!r} is the last enabled admin")
            conn.execute(update(users).where(users.c.id == account.id).values(disabled=1))
        log.info("account %r disabled", account.username)
        return self._existing(username)

    def enable(self, username: str) -> Account:
        """Let a disabled account log in again."""
        account = self._existing(username)
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == account.id).values(disabled=0))
        log.info("account %r enabled", account.username)
        return self._existing(username)

    def issue_token(self, username: str) -> str:
        """A new API token for *username*, replacing any earlier one. Returned once: only its
        digest is kept, so a lost token is replaced, never recovered."""
        account = self._existing(username)
        if account.disabled:
            raise AccountError(f"{account.username!r} is disabled")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == account.id)
                .values(api_token_hash=token_digest(token))
            )
        log.info("API token issued to %r", account.username)
        return token

    def revoke_token(self, username: str) -> Account:
        """Withdraw *username*'s API token (if any)."""
        account = self._existing(username)
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == account.id).values(api_token_hash=None))
        log.info("API token of %r revoked", account.username)
        return self._existing(username)

    # -- logging in ---------------------------------------------------------------------------

    def login(self, username: str, password: str, address: str) -> Account:
        """The account, if *password* is right and neither the account nor *address* is locked
        out and the account is enabled; otherwise :class:`LoginRefused` (see the module
        docstring: the same answer, in about the same time, whatever the reason)."""
        name = normal_username(username)[:64]
        address = (address or "unknown")[:64]
        since = self._now(-60 * self.settings.lockout.window_minutes)
        with self.reader.connect() as conn:
            row = self._row(conn, name)
            by_account = self._failures(conn, login_failures.c.username == name, since)
            by_address = self._failures(conn, login_failures.c.address == address, since)
        # The password is checked in every case, outside any transaction (it takes ~0.1 s).
        stored = row["password_hash"] if row is not None else self._dummy()
        right = self._verify(stored, password) and row is not None
        limit = self.settings.lockout.failures
        reason = None
        if row is None:
            reason = "unknown user"
        elif by_account >= limit:
            reason = f"account locked ({by_account} failures)"
        elif by_address >= limit:
            reason = f"address locked ({by_address} failures)"
        elif row["disabled"]:
            reason = "account disabled"
        elif not right:
            reason = "wrong password"
        if reason is not None:
            self._record_failure(name, address)
            log.warning("login refused for %r from %s: %s", name, address, reason)
            raise LoginRefused(reason)
        assert row is not None
        if self.hasher.check_needs_rehash(row["password_hash"]):
            # Stronger parameters since this hash was made: hash the password again now that
            # we have it (the user's other sessions end, as the stamp changes with the hash).
            row = {**row, "password_hash": self.hasher.hash(password)}
            with self.engine.begin() as conn:
                conn.execute(
                    update(users)
                    .where(users.c.id == row["id"])
                    .values(password_hash=row["password_hash"])
                )
        with self.engine.begin() as conn:
            conn.execute(delete(login_failures).where(login_failures.c.username == name))
        log.info("%r logged in from %s", name, address)
        return _account(row)

    def failures(self, *, username: str | None = None, address: str | None = None) -> int:
        """Refused logins within the lockout window, for *username* or *address*."""
        since = self._now(-60 * self.settings.lockout.window_minutes)
        with self.reader.connect() as conn:
            if username is not None:
                where = login_failures.c.username == normal_username(username)
            elif address is not None:
                where = login_failures.c.address == address
            else:
                raise TypeError("failures() needs username or address")
            return self._failures(conn, where, since)

    # -- inside -------------------------------------------------------------------------------

    def _now(self, offset_s: float = 0) -> str:
        return format_time(dt.datetime.fromtimestamp(self.clock() + offset_s, dt.UTC))

    def _row(self, conn: Connection, name: str) -> Mapping[str, Any] | None:
        return conn.execute(select(users).where(users.c.username == name)).mappings().first()

    def _existing(self, username: str) -> Account:
        account = self.find(username)
        if account is None:
            raise AccountError(f"no user {normal_username(username)!r}")
        return account

    @staticmethod
    def _failures(conn: Connection, where: Any, since: str) -> int:
        return conn.execute(
            select(func.count())
            .select_from(login_failures)
            .where(where, login_failures.c.at >= since)
        ).scalar_one()

    def _record_failure(self, name: str, address: str) -> None:
        window_start = self._now(-60 * self.settings.lockout.window_minutes)
        with self.engine.begin() as conn:
            conn.execute(
                insert(login_failures).values(username=name, address=address, at=self._now())
            )
            # Rows older than the window count for nothing any more; the log keeps the history.
            conn.execute(delete(login_failures).where(login_failures.c.at < window_start))

    def _store_password(self, user_id: int, password_hash: str, must_change: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(
                    password_hash=password_hash,
                    must_change_password=int(must_change),
                    password_changed_at=self._now(),
                )
            )

    def _verify(self, stored: str, password: str) -> bool:
        if len(password) > MAX_PASSWORD:
            return False
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        return _dummy_hash(self.hasher.time_cost, self.hasher.memory_cost, self.hasher.parallelism)

    def _check_profile(self, agency: str, role: str, level: int) -> None:
        if agency not in self.settings.agencies:
            known = ", ".join(sorted(self.settings.agencies))
            raise AccountError(f"agency {agency!r} is not configured (known: {known})")
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if isinstance(level, bool) or level not in LEVELS:
            raise AccountError(f"level {level!r}: one of {', '.join(map(str, LEVELS))}")

    @staticmethod
    def _check_posts(posts: Iterable[str]) -> list[str]:
        found = []
        for post in posts:
            post = post.strip()
            if post and post != ALL_POSTS and not NAME.fullmatch(post):
                raise AccountError(f"post {post!r}: a site id such as bz-santa-elena, or *")
            if post and post not in found:
                found.append(post)
        return found

    @staticmethod
    def _check_password(password: str, username: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise AccountError(f"the password may have at most {MAX_PASSWORD} characters")
        if password.strip().lower() == username:
            raise AccountError("the password must not be the username")

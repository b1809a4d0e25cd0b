"""Accounts (console/accounts.py) on both backends: hashing, logging in, lockout per account and
per address, disabled accounts, forced and voluntary password changes, API tokens, and the
``borderlane-console users`` commands over them."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select

from console.access import Principal
from console.accounts import REFUSED, AccountError, Accounts, LoginRefused
from console.settings import LockoutSettings, Settings
from console.store import open_database
from console.store.schema import login_failures, users
from harness.console_web import FAST_HASHER, MovableClock

PASSWORD = "a long enough passphrase"
LOCKOUT = Settings(lockout=LockoutSettings(failures=3, window_minutes=15))


class CountingHasher(PasswordHasher):
    """The fast test parameters, counting verifications (the timing guard for unknown users)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8 * 1024, parallelism=1)
        self.verified = 0

    def verify(self, hash, password):
        self.verified += 1
        return super().verify(hash, password)


@pytest.fixture
def engine(console_db):
    found = open_database(console_db)
    yield found
    found.dispose()


@pytest.fixture
def clock():
    return MovableClock()


@pytest.fixture
def accounts(engine, clock):
    return Accounts(engine, LOCKOUT, hasher=CountingHasher(), clock=clock)


def add(accounts: Accounts, username: str = "msantos", **overrides) -> object:
    options = {
        "agency": "immigration",
        "role": "officer",
        "level": 2,
        "posts": ["bz-santa-elena"],
        "password": PASSWORD,
    }
    options.update(overrides)
    return accounts.create(username, overrides.pop("display_name", "Maria Santos"), **options)


def stored(engine, username: str) -> dict:
    with engine.connect() as conn:
        return dict(
            conn.execute(select(users).where(users.c.username == username)).mappings().one()
        )


def test_a_new_account_stores_an_argon2id_hash_never_the_password(accounts, engine):
    account = add(accounts, "MSantos ", posts=["bz-santa-elena", "bz-santa-elena", "*"])
    assert account.username == "msantos"  # compared in lower case
    assert (account.agency, account.role, account.level) == ("immigration", "officer", 2)
    assert account.posts == frozenset({"bz-santa-elena", "*"})
    assert account.must_change_password and not account.disabled and not account.has_token
    row = stored(engine, "msantos")
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in json.dumps(row, default=str)
    assert json.loads(row["posts"]) == ["bz-santa-elena", "*"]
    assert account.principal() == Principal(
        account.id, "msantos", "immigration", "officer", 2, frozenset({"bz-santa-elena", "*"})
    )


def test_the_default_hasher_is_at_least_argon2_cffis_defaults(engine):
    """argon2id, 64 MiB, 3 passes (RFC 9106's second profile): nothing weaker by default."""
    hasher = Accounts(engine).hasher
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) >= (3, 65536, 4)
    assert hasher.type.name == "ID"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"username": "9lives"}, "username"),
        ({"username": "a b"}, "username"),
        ({"agency": "cia"}, "agency 'cia' is not configured"),
        ({"role": "superuser"}, "role 'superuser'"),
        ({"level": 5}, "level 5"),
        ({"level": True}, "level True"),
        ({"posts": ["Santa Elena"]}, "post 'Santa Elena'"),
        ({"password": "short"}, "at least 10"),
        ({"password": "msantos123", "username": "msantos123"}, "not be the username"),
    ],
)
def test_bad_accounts_are_refused_naming_the_problem(accounts, overrides, message):
    overrides = dict(overrides)  # the parameters are shared by both backends' runs
    username = overrides.pop("username", "msantos")
    with pytest.raises(AccountError, match=message):
        add(accounts, username, **overrides)
    assert accounts.all_accounts() == []


def test_a_username_is_taken_once(accounts):
    add(accounts)
    with pytest.raises(AccountError, match="already exists"):
        add(accounts, "MSANTOS")


def test_login_with_the_right_password_and_refusals_all_read_the_same(accounts, caplog):
    add(accounts)
    assert accounts.login("msantos", PASSWORD, "10.0.0.1").username == "msantos"
    caplog.set_level(logging.WARNING, logger="borderlane.console.accounts")
    reasons = []
    for username, password in (("msantos", "not the password"), ("nobody", PASSWORD)):
        with pytest.raises(LoginRefused) as refused:
            accounts.login(username, password, "10.0.0.1")
        assert str(refused.value) == REFUSED
        reasons.append(refused.value.reason)
    assert reasons == ["wrong password", "unknown user"]
    logged = caplog.text
    assert "login refused for 'msantos' from 10.0.0.1: wrong password" in logged
    assert "not the password" not in logged and PASSWORD not in logged


def test_an_unknown_user_costs_a_password_verification_too(accounts):
    """Same work whether the user exists or not: the answer's time does not tell."""
    add(accounts)
    for username in ("msantos", "nobody"):
        before = accounts.hasher.verified
        with pytest.raises(LoginRefused):
            accounts.login(username, "not the password", "10.0.0.1")
        assert accounts.hasher.verified == before + 1, username


def test_an_account_locks_after_n_failures_from_any_addresses(accounts, engine, clock):
    add(accounts)
    for number in range(3):
        with pytest.raises(LoginRefused):
            accounts.login("msantos", "wrong guess", f"10.0.0.{number}")
    assert accounts.failures(username="msantos") == 3
    with pytest.raises(LoginRefused) as refused:  # the right password, from a fresh address
        accounts.login("msantos", PASSWORD, "10.9.9.9")
    assert refused.value.reason == "account locked (3 failures)"
    assert str(refused.value) == REFUSED  # the same words as a wrong password
    with engine.connect() as conn:
        rows = conn.execute(select(login_failures)).mappings().all()
    assert {row["username"] for row in rows} == {"msantos"}
    assert all(PASSWORD not in json.dumps(dict(row)) for row in rows)
    with clock.shifted(16 * 60):  # the window has slid past every failure
        assert accounts.login("msantos", PASSWORD, "10.9.9.9").username == "msantos"
    assert accounts.failures(username="msantos") == 0  # a good login clears the account's


def test_an_address_locks_after_n_failures_on_any_accounts(accounts):
    for username in ("msantos", "jchen"):
        add(accounts, username)
    for username in ("msantos", "jchen", "nobody"):
        with pytest.raises(LoginRefused):
            accounts.login(username, "wrong guess", "10.6.6.6")
    with pytest.raises(LoginRefused) as refused:
        accounts.login("jchen", PASSWORD, "10.6.6.6")
    assert refused.value.reason == "address locked (3 failures)"
    # Elsewhere, the same account is fine: its own failures are below the limit.
    assert accounts.login("jchen", PASSWORD, "10.0.0.1").username == "jchen"


def test_a_disabled_account_cannot_log_in_and_the_last_admin_stays(accounts):
    add(accounts)
    add(accounts, "ada", role="admin", level=4)
    accounts.disable("msantos")
    with pytest.raises(LoginRefused) as refused:
        accounts.login("msantos", PASSWORD, "10.0.0.1")
    assert refused.value.reason == "account disabled"
    with pytest.raises(AccountError, match="last enabled admin"):
        accounts.disable("ada")
    accounts.enable("msantos")
    assert accounts.login("msantos", PASSWORD, "10.0.0.2").username == "msantos"


def test_a_weaker_hash_is_replaced_at_the_next_login(engine):
    weak = Accounts(engine, hasher=FAST_HASHER)
    add(weak)
    strong = Accounts(engine)  # argon2-cffi's defaults
    before = stored(engine, "msantos")["password_hash"]
    assert strong.hasher.check_needs_rehash(before)
    account = strong.login("msantos", PASSWORD, "10.0.0.1")
    after = stored(engine, "msantos")["password_hash"]
    assert after != before and not strong.hasher.check_needs_rehash(after)
    assert account.stamp == strong.find("msantos").stamp  # the session gets the new stamp


def test_changing_and_setting_passwords(accounts):
    account = add(accounts)
    with pytest.raises(AccountError, match="current password is not right"):
        accounts.change_password(account.id, "not it at all", "my own passphrase")
    with pytest.raises(AccountError, match="must differ"):
        accounts.change_password(account.id, PASSWORD, PASSWORD)
    changed = accounts.change_password(account.id, PASSWORD, "my own passphrase")
    assert not changed.must_change_password and changed.stamp != account.stamp
    with pytest.raises(LoginRefused):
        accounts.login("msantos", PASSWORD, "10.0.0.1")
    assert accounts.login("msantos", "my own passphrase", "10.0.0.1")
    reset = accounts.set_password("msantos", "from the admin desk")
    assert reset.must_change_password and reset.stamp != changed.stamp


def test_api_tokens_are_shown_once_and_stored_as_sha256(accounts, engine):
    add(accounts)
    token = accounts.issue_token("msantos")
    assert token.startswith("blc_") and len(token) > 40
    row = stored(engine, "msantos")
    assert row["api_token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert accounts.by_token(token).username == "msantos"
    assert accounts.by_token(token + "x") is None and accounts.by_token("") is None
    newer = accounts.issue_token("msantos")
    assert accounts.by_token(token) is None and accounts.by_token(newer) is not None
    accounts.disable("msantos")
    assert accounts.by_token(newer) is None  # a disabled user's token stops working
    accounts.enable("msantos")
    accounts.revoke_token("msantos")
    assert accounts.by_token(newer) is None and not accounts.find("msantos").has_token


# -- the command line ----------------------------------------------------------------------


def invoke(args, input=None):
    from console.cli import cli

    return CliRunner().invoke(cli, args, input=input)


def run(console_db, *args, input=None):
    return invoke(["users", *args, "--db", console_db], input=input)


def add_args(username: str, name: str, agency: str, role: str, level: int, *extra: str):
    """``users add`` arguments, as an admin would type them (the password comes on stdin)."""
    options = ("--name", name, "--agency", agency, "--role", role, "--level", str(level))
    return ("add", username, *options, *extra)


def test_users_add_prompts_twice_and_lists(console_db):
    twice = f"{PASSWORD}\n{PASSWORD}\n"
    admin = add_args("ada", "Ada Lopez", "immigration", "admin", 4, "--no-forced-change")
    added = run(console_db, *admin, input=twice)
    assert added.exit_code == 0, added.output
    assert "Again, to be sure" in added.output and PASSWORD not in added.output
    listed = run(console_db, "list")
    assert listed.exit_code == 0
    assert "ada" in listed.output and "admin" in listed.output and "Ada Lopez" in listed.output
    assert "must change password" not in listed.output
    officer = add_args(
        "msantos", "Maria Santos", "immigration", "officer", 2, "--post", "bz-santa-elena"
    )
    mismatch = run(console_db, *officer, input=f"{PASSWORD}\nsomething else\n{twice}")
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output  # click asks again
    assert "must change password" in run(console_db, "list").output


def test_users_errors_are_one_line(console_db):
    bad_agency = run(
        console_db, *add_args("x1", "X", "cia", "admin", 1), input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert bad_agency.exit_code == 1
    assert bad_agency.output.strip().splitlines()[-1].startswith("Error: agency 'cia'")
    missing = run(console_db, "disable", "nobody")
    assert missing.exit_code == 1 and missing.output == "Error: no user 'nobody'\n"
    assert "Traceback" not in bad_agency.output + missing.output


def test_users_token_set_password_and_disable(console_db):
    engine = open_database(console_db)
    accounts = Accounts(engine, hasher=FAST_HASHER)
    add(accounts)
    add(accounts, "ada", role="admin", level=4)
    try:
        issued = invoke(["users", "token", "msantos", "--db", console_db])
        assert issued.exit_code == 0
        token = issued.stdout.strip()
        assert accounts.by_token(token).username == "msantos"
        assert "shown this once" in issued.stderr
        reset = run(console_db, "set-password", "msantos", input="brand new secret\n" * 2)
        assert reset.exit_code == 0 and accounts.find("msantos").must_change_password
        assert accounts.login("msantos", "brand new secret", "10.0.0.1")
        assert run(console_db, "disable", "msantos").exit_code == 0
        assert accounts.by_token(token) is None
        last = run(console_db, "disable", "ada")
        assert last.exit_code == 1 and "last enabled admin" in last.output
        assert run(console_db, "token", "msantos", "--revoke").exit_code == 0
        assert not accounts.find("msantos").has_token
    finally:
        engine.dispose()


def test_users_help_has_examples():
    for command in ("add", "list", "disable", "set-password", "token"):
        shown = invoke(["users", command, "--help"])
        assert shown.exit_code == 0 and "borderlane-console users " + command in shown.output

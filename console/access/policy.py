"""Access to the console: agency, role and clearance level; deny by default; decided here only.

Every route and API call asks one question, ``policy.may(principal, action, resource)``, and
the answer comes from :data:`RULES`, a table a reader can audit line by line. An action that no
rule names is denied; a rule grants an action to some roles, at a minimum level, optionally only
to some agencies, only at the principal's own posts, or only for watchlists shared with the
principal's agency. Nothing else in the console decides access.

::

    policy = Policy(border_agency="immigration")
    alice = Principal(user_id=7, username="alice", agency="immigration", role="officer",
                      level=2, posts=frozenset({"bz-santa-elena"}))
    policy.may(alice, "crossing.view", Resource(site="bz-santa-elena"))   # True
    policy.may(alice, "crossing.view", Resource(site="bz-benque-viejo"))  # False: not her post
    policy.may(alice, "fleet.view")                                        # False: no rule

What the table says, in words:

- technicians and admins see devices and alerts, never a traveller; technicians of level 2 and
  up send commands to kiosks and make enrollment tokens, of level 3 and up revoke kiosks;
  admins manage accounts;
- analysts (of any agency) and supervisors see statistics: aggregates, never a person;
- officers and supervisors of the border agency see crossings and referrals of their own posts
  (``*`` in a principal's posts: every post); supervisors record dispositions;
- a watchlist hit's details need level 3 or more **and** an agency the list is shared with;
- auditors see the audit log and nothing else.

Rules marked ``personal`` read personal data: the web layer asks the user for a purpose first
and writes an audit entry for every such read (:mod:`console.audit`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

ROLES = ("admin", "technician", "officer", "supervisor", "analyst", "auditor")
LEVELS = (1, 2, 3, 4)
ALL_POSTS = "*"
BORDER = "border"
"""In a rule's agencies: the agency that runs the border posts (configuration names it)."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account's agency, role, clearance level and posts."""

    user_id: int
    username: str
    agency: str
    role: str
    level: int
    posts: frozenset[str] = frozenset()
    """The posts (site ids) the user serves; ``*`` means every post."""

    def serves(self, site: str | None) -> bool:
        return site is not None and (ALL_POSTS in self.posts or site in self.posts)


@dataclass(frozen=True)
class Resource:
    """What the action is about, as far as access depends on it."""

    site: str | None = None
    """The post (site id) of a crossing, hit, referral or kiosk."""
    shared_with: frozenset[str] | None = None
    """For a watchlist hit: the agencies its list is shared with."""


@dataclass(frozen=True)
class Rule:
    action: str
    roles: frozenset[str]
    why: str
    min_level: int = 1
    agencies: frozenset[str] | None = None
    """None: any agency. May name :data:`BORDER` for the configured border agency."""
    scope: Literal["any", "own-posts"] = "any"
    shared_list: bool = False
    """The resource's watchlist must be shared with the principal's agency."""
    personal: bool = False
    """Reads personal data: a purpose is asked for and the read is audited."""


def _rule(action: str, roles: Iterable[str], why: str, **kwargs: object) -> Rule:
    return Rule(action, frozenset(roles), why, **kwargs)  # type: ignore[arg-type]


_STAFF = ("officer", "supervisor")

RULES: tuple[Rule, ...] = (
    _rule("fleet.view", ("technician", "admin"), "technicians see devices, never a traveller"),
    _rule("alerts.view", ("technician", "admin"), "alerts are about devices"),
    _rule(
        "device.command",
        ("technician", "admin"),
        "commands change a kiosk's state: not for a level-1 trainee",
        min_level=2,
    ),
    _rule(
        "device.enroll",
        ("technician", "admin"),
        "an enrollment token lets a kiosk into the fleet: not for a level-1 trainee",
        min_level=2,
    ),
    _rule(
        "device.revoke",
        ("technician", "admin"),
        "revoking takes a kiosk out of service until it is enrolled again: level 3 and up",
        min_level=3,
    ),
    _rule("users.manage", ("admin",), "admins manage accounts"),
    _rule(
        "statistics.view",
        ("analyst", "supervisor", "admin"),
        "aggregates for policy, never a person",
    ),
    _rule(
        "crossings.search",
        _STAFF,
        "the border agency's staff search crossings at their posts",
        agencies=frozenset({BORDER}),
        scope="own-posts",
        personal=True,
    ),
    _rule(
        "crossing.view",
        _STAFF,
        "a crossing names a traveller: the border agency's staff, at their posts",
        agencies=frozenset({BORDER}),
        scope="own-posts",
        personal=True,
    ),
    _rule(
        "referrals.view",
        _STAFF,
        "referrals of their own posts",
        agencies=frozenset({BORDER}),
        scope="own-posts",
        personal=True,
    ),
    _rule(
        "referral.dispose",
        ("supervisor",),
        "a supervisor records the final disposition of an escalation",
        agencies=frozenset({BORDER}),
        scope="own-posts",
        personal=True,
    ),
    _rule(
        "hit.details",
        _STAFF,
        "a watchlist entry's details: level 3 and an agency the list is shared with",
        min_level=3,
        scope="own-posts",
        shared_list=True,
        personal=True,
    ),
    _rule("audit.view", ("auditor",), "auditors see the audit log and nothing else", personal=True),
)

ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(rule.action for rule in RULES))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str
    rule: Rule | None = None

    def __bool__(self) -> bool:
        return self.allowed


@dataclass
class Policy:
    """The rules, with the configuration they depend on (the border agency's id)."""

    border_agency: str
    rules: tuple[Rule, ...] = RULES
    _by_action: dict[str, tuple[Rule, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_action: dict[str, list[Rule]] = {}
        for rule in self.rules:
            by_action.setdefault(rule.action, []).append(rule)
        self._by_action = {action: tuple(rules) for action, rules in by_action.items()}

    def may(self, principal: Principal, action: str, resource: Resource | None = None) -> bool:
        """Whether *principal* may do *action* on *resource*; False for anything unknown."""
        return self.decide(principal, action, resource).allowed

    def decide(
        self, principal: Principal, action: str, resource: Resource | None = None
    ) -> Decision:
        """:meth:`may` with the reason, for logs and the 403 page."""
        rules = self._by_action.get(action)
        if not rules:
            return Decision(False, f"no rule grants {action!r}")
        why = f"{principal.role} may not {action}"
        for rule in rules:
            if principal.role not in rule.roles:
                continue
            if principal.level < rule.min_level:
                why = f"{action} needs level {rule.min_level}"
                continue
            if rule.agencies is not None and principal.agency not in self._agencies(rule):
                why = f"{action} is for {', '.join(sorted(self._agencies(rule)))}"
                continue
            # Without a site (a search, a queue) the route itself keeps to the user's posts.
            site = resource.site if resource is not None else None
            if rule.scope == "own-posts" and site is not None and not principal.serves(site):
                why = f"{site} is not one of {principal.username}'s posts"
                continue
            if rule.shared_list:
                shared = resource.shared_with if resource is not None else None
                if not shared or principal.agency not in shared:
                    why = f"the list is not shared with {principal.agency}"
                    continue
            return Decision(True, rule.why, rule)
        return Decision(False, why)

    def personal(self, action: str) -> bool:
        """Whether *action* reads personal data (purpose asked, read audited)."""
        return any(rule.personal for rule in self._by_action.get(action, ()))

    def _agencies(self, rule: Rule) -> frozenset[str]:
        assert rule.agencies is not None
        return frozenset(self.border_agency if a == BORDER else a for a in rule.agencies)

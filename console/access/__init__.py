"""Who may do what in the console: one policy (:mod:`.policy`) that every route asks."""

from .policy import (
    ACTIONS,
    LEVELS,
    ROLES,
    RULES,
    Decision,
    Policy,
    Principal,
    Resource,
    Rule,
)

__all__ = [
    "ACTIONS",
    "LEVELS",
    "ROLES",
    "RULES",
    "Decision",
    "Policy",
    "Principal",
    "Resource",
    "Rule",
]

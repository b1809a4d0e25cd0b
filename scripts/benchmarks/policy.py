"""What one access decision costs: every console route asks the policy before it runs.

The issue's budget is 0.1 ms a check (pycasbin publishes 0.85 ms at 1,100 rules). Measured for
the most expensive path (a watchlist hit's details: role, level, agency, post and list checks)
and for a denial that walks every rule of an action.
"""

from __future__ import annotations

from console.access import Policy, Principal, Resource

from . import Figure, at_most, rate


def run(quick: bool) -> list[Figure]:
    count = 2000 if quick else 200_000
    policy = Policy(border_agency="immigration")
    officer = Principal(1, "officer", "immigration", "officer", 3, frozenset({"bz-santa-elena"}))
    shared = Resource(site="bz-santa-elena", shared_with=frozenset({"immigration", "police"}))
    elsewhere = Resource(site="bz-benque-viejo", shared_with=frozenset({"police"}))
    figures = []
    for name, resource in (("allowed: hit details", shared), ("denied: another post", elsewhere)):
        per_second = rate(lambda r=resource: policy.may(officer, "hit.details", r), count)
        figures.append(
            at_most(f"policy check, {name}", 1e6 / per_second, "us", 100, "one core, mean of many")
        )
    return figures

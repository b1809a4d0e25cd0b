"""Issue 14: HTTP parameters from outside. Whatever a browser or a script puts in the query
string or the path, every page of the console answers with a page, a redirect or a 4xx naming
the bad parameter, never a 500.

Run as the administrator, a supervisor and an auditor (between them every page is theirs)
through the session's console (``console_web``: SQLite, an account per role), with a valid
purpose half of the time so that the pages that read personal data get past their purpose
form.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_from_bytes

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from console.audit import PURPOSES
from console.store.search import CrossingQuery
from console.web.purpose import PURPOSE, PURPOSE_TEXT

#: Every parameter a console view reads from the query string (grep request.args), and some.
PARAMETERS = sorted(
    {
        *CrossingQuery.PARAMS,
        "after",
        "page",
        "rule",
        "device",
        "site",
        "state",
        "post",
        "command",
        "user",
        "action",
        "since",
        "until",
        "from",
        "to",
        "seq",
        "format",
        "day",
        "limit",
    }
)
HOSTILE_VALUES = [
    b"",
    b"-1",
    b"0",
    b"9" * 5000,
    b"1e999",
    b"NaN",
    b"2026-02-30",
    b"9999-12-31",
    b"0000-01-01",
    b"\x00",
    b"a\nb",
    b"\xed\xa0\x80",  # a surrogate, UTF-8-encoded: not UTF-8
    b"\xff\xfe",
    b"../../etc/passwd",
    b"' OR 1=1 --",
    b"%",
    b"x" * 10_000,
]
#: What a client can put in a query string: any bytes, percent-encoded.
values = (
    st.sampled_from(HOSTILE_VALUES)
    | st.binary(max_size=40)
    | st.text(max_size=20).map(lambda text: text.encode("utf-8", "surrogatepass"))
)


def get_routes(app) -> list[tuple[str, tuple[str, ...]]]:
    """``(rule, its variables)`` of every GET page but the style sheets and logging out."""
    found = []
    for rule in app.url_map.iter_rules():
        if "GET" in (rule.methods or ()) and rule.endpoint not in ("static", "auth.logout"):
            found.append((rule.rule, tuple(rule.arguments)))
    return sorted(found)


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, tuple[str, ...]]]) -> tuple[str, str]:
    """A path of one of ``routes`` (its variables filled in) and a raw query string."""
    rule, arguments = draw(st.sampled_from(routes))
    path = rule
    for name in arguments:
        value = quote_from_bytes(draw(values) or b"x", safe="")
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
    query = draw(st.lists(st.tuples(st.sampled_from(PARAMETERS), values), max_size=4))
    if draw(st.booleans()):
        query.append((PURPOSE, draw(st.sampled_from(sorted(PURPOSES))).encode()))
        query.append((PURPOSE_TEXT, draw(values)))
    return path, "&".join(f"{quote(name)}={quote_from_bytes(value)}" for name, value in query)


def test_any_query_on_any_page_is_answered_without_a_server_error(console_web) -> None:
    # The administrator sees the fleet and the accounts, the supervisor the referrals and the
    # crossings of a post, the auditor the audit trail: together, every page's own code.
    clients = {role: console_web.client(role) for role in ("admin", "supervisor", "auditor")}
    routes = get_routes(console_web.app)
    assert len(routes) > 10  # the walk sees the pages (an empty map would pass anything)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.sampled_from(sorted(clients)), requests(routes))
    @example("supervisor", ("/crossings/search", "purpose=investigation&since=" + "9" * 5000))
    @example("auditor", ("/audit/", "seq=%ED%A0%80"))
    def check(role: str, request: tuple[str, str]) -> None:
        path, query = request
        response = clients[role].get(path, query_string=query)
        assert response.status_code < 500, (role, path, query, response.get_data(True)[:300])

    check()

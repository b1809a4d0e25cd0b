"""The purpose prompt and the audit of a view's read: ``@purpose_required`` and
:func:`audit_read`.

A view whose action reads personal data (``policy().personal(action)``: a search, a crossing,
the referral queue, the audit log itself) is decorated under :func:`~.access.require`, and
calls :func:`audit_read` with the ids of the records it is about to show, *before* it
returns them::

    @bp.get("/crossings/search")
    @require("crossings.search")
    @purpose_required
    def search():
        found = queries.search(db(), **filters)       # read what will be shown
        audit_read([c["id"] for c in found])           # entry committed, or no page at all
        return render_template("search.html", found=found, purpose=purpose_args())

What the decorator does, for such an action:

- **no valid purpose** in the request (``purpose``, a code of :data:`console.audit.PURPOSES`,
  and ``purpose_text`` when the code is ``other``): a GET page answers with a small form
  asking for it (``purpose.html``) that sends the user back to the same URL with every other
  query parameter kept; a bad purpose shows the form again with the problem (400). Under
  ``/api/``, and for a POST (whose form must carry the two fields), the answer is 400 naming
  the parameter. The view does not run.
- **with one**: ``g.purpose`` is ``(code, text)`` and the view runs. :func:`audit_read` writes
  the entry through :func:`console.audit.append` (who, the action, the purpose, the query —
  the URL's and the query string's parameters, but the purpose's — the records, the client's
  address) and commits it before returning. If the entry cannot be written, the exception
  ends the request: **no audit, no read**.
- a view that returns a successful answer **without** having called :func:`audit_read` is a
  bug; the answer is replaced by a 500 and logged, so the data never leaves unaudited.

For an action that is not personal the decorator lets the view run as it is
(``g.purpose`` None, :func:`audit_read` writes nothing).

Links to the next page of a result carry the purpose on: ``url_for(..., **purpose_args())``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flask import abort, current_app, g, render_template, request
from werkzeug.datastructures import MultiDict

from .. import audit
from .access import policy, principal, wants_json
from .db import writer

F = TypeVar("F", bound=Callable[..., Any])

PURPOSE = "purpose"
PURPOSE_TEXT = "purpose_text"


def purpose_required(view: F) -> F:
    """Ask for the purpose before a personal view runs, and hold it to :func:`audit_read`;
    see the module docstring. Goes under ``@require(action)``, which it takes the action
    from."""

    @functools.wraps(view)
    def asked(*args: Any, **kwargs: Any) -> Any:
        decision = g.get("decision")
        if decision is None or decision.rule is None:
            raise RuntimeError(f"{view.__name__}: put @purpose_required under @require(...)")
        action = decision.rule.action
        g.audit_action, g.audit_entries = action, []
        if not policy().personal(action):
            g.purpose = None
            return view(*args, **kwargs)
        values = request.args if request.method in ("GET", "HEAD") else request.form
        try:
            g.purpose = audit.check_purpose(values.get(PURPOSE), values.get(PURPOSE_TEXT))
        except audit.AuditError as exc:
            return _ask(action, values, str(exc))
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code < 400 and not g.audit_entries:
            current_app.logger.error(
                "%s (%s) answered without audit_read(): answer withheld", request.path, action
            )
            abort(500, description="this page was not audited, so it is not shown")
        return response

    return asked  # type: ignore[return-value]


def audit_read(
    records: Iterable[str], query: Mapping[str, Any] | None = None
) -> audit.Entry | None:
    """Write the audit entry for what this request is about to show or export, committed
    before this returns (an error raised here must end the request: no audit, no read).

    *records*: the ids of the records shown or exported (crossing, hit or referral ids; the
    audit page gives ``audit:<seq>``). *query*: what was asked; by default the URL's
    parameters and the query string's (a parameter given twice as a list), without the
    purpose, which has its own fields. Only for a view under :func:`purpose_required`;
    returns the entry (None for an action that is not personal: nothing is written).
    """
    if "audit_entries" not in g:
        raise RuntimeError("audit_read() is for a view decorated with @purpose_required")
    if g.purpose is None:  # an action that reads nothing personal: nothing to audit
        return None
    who = principal()
    assert who is not None  # @require let the view run
    code, text = g.purpose
    entry = audit.append(
        writer(),
        who,
        g.audit_action,
        purpose=code,
        purpose_text=text,
        query=request_query() if query is None else query,
        records=list(records),
        address=request.remote_addr,
    )
    g.audit_entries.append(entry)
    return entry


def request_query() -> dict[str, Any]:
    """The request's parameters as an audit entry's query: the URL's (``crossing_id``…),
    then the query string's (a list for one given more than once), the purpose left out."""
    found: dict[str, Any] = dict(request.view_args or {})
    for name, values in request.args.lists():
        if name not in (PURPOSE, PURPOSE_TEXT):
            found[name] = values[0] if len(values) == 1 else values
    return found


def purpose_args() -> dict[str, str]:
    """The request's purpose as URL parameters, for the links that go on with the same
    purpose (the next page, a record of the result): ``url_for(..., **purpose_args())``."""
    purpose = g.get("purpose")
    if not purpose:
        return {}
    code, text = purpose
    return {PURPOSE: code, PURPOSE_TEXT: text} if text else {PURPOSE: code}


def _ask(action: str, values: MultiDict[str, str], problem: str) -> Any:
    """The purpose form (a page), or a 400 naming the parameter (the API, a POST)."""
    given = values.get(PURPOSE) or values.get(PURPOSE_TEXT)
    if wants_json() or request.method not in ("GET", "HEAD"):
        name = PURPOSE_TEXT if values.get(PURPOSE) == audit.OTHER else PURPOSE
        abort(400, description=f"{name}: {problem}")
    keep = [
        (name, value)
        for name, value in values.items(multi=True)
        if name not in (PURPOSE, PURPOSE_TEXT)
    ]
    page = render_template(
        "purpose.html",
        action=action,
        target=request.path,
        purposes=audit.PURPOSES,
        other=audit.OTHER,
        keep=keep,
        chosen=values.get(PURPOSE, ""),
        text=values.get(PURPOSE_TEXT, ""),
        text_max=audit.PURPOSE_TEXT_MAX,
        problem=problem if given else None,
    )
    return page, 400 if given else 200

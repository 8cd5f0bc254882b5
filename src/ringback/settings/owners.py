"""What every page in the settings room shares: rendering and the gate that asks the
role table (:mod:`ringback.roles`) whether the signed-in person may be here."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse

from ringback.deps import Deps
from ringback.roles import Capability, can
from ringback.web import TEMPLATES, SignedIn, staff_frame


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page, kept out of caches and referrers: some show a secret or a one-time link
    (shown once) and the link pages carry one in their URL."""
    response = HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def gate(deps: Deps, user: SignedIn, capability: Capability, why: str) -> HTMLResponse | None:
    """None when ``user`` may do ``capability``; otherwise the 403 page saying ``why``."""
    if can(user, capability):
        return None
    return render(
        "staff/error.html", 403, **staff_frame(deps, user), title="Not allowed", message=why
    )

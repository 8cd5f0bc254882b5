"""What every owner page in the settings room shares: rendering and the owners-only gate."""

from __future__ import annotations

from typing import Any

from fastapi.responses import HTMLResponse

from ringback.deps import Deps
from ringback.web import TEMPLATES, SignedIn, staff_frame


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)


def owners_only(deps: Deps, user: SignedIn, why: str) -> HTMLResponse | None:
    """None for an owner; for anyone else the 403 page saying ``why``."""
    if user.role == "owner":
        return None
    return render(
        "staff/error.html", 403, **staff_frame(deps, user), title="Owners only", message=why
    )

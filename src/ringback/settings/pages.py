"""Owner pages for setting Ringback up: the texting registration helper.

Only HTTP lives here; what the pages show is built in :mod:`ringback.settings`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ringback.missed_calls.service import textback_body
from ringback.settings import registration
from ringback.web import TEMPLATES, SignedIn, deps_of, staff_frame, staff_user

router = APIRouter(prefix="/staff/settings", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)


@router.get("/texting-registration", response_class=HTMLResponse)
def texting_registration(request: Request, user: Viewer, location: str = "") -> Response:
    """US A2P 10DLC: the campaign's description, samples and keywords, ready to paste."""
    deps = deps_of(request)
    frame = staff_frame(deps, user)
    if user.role != "owner":
        return _render(
            "staff/error.html",
            403,
            **frame,
            title="Owners only",
            message="Texting registration is set up by an owner.",
        )
    locations = list(deps.locations)
    chosen = deps.locations.get(location) if location else locations[0]
    if chosen is None:
        known = ", ".join(loc.id for loc in locations)
        return _render(
            "staff/error.html",
            404,
            **frame,
            title="Not found",
            message=f"location: no location {location!r} (known: {known})",
        )
    found = registration.build(chosen, textback_body(chosen, 0, None), deps.clock())
    return _render(
        "staff/registration.html",
        **frame,
        reg=found,
        location_obj=chosen,
        locations=locations,
    )

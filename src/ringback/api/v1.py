"""The JSON API (``/api/v1``), for a clinic's other tools. OpenAPI at ``/openapi.json``.

Every endpoint needs a bearer API token (``ringback tokens create``) or a signed-in
staff session, and sees only the locations its account may see.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ringback.staff.web import SignedIn, api_user

router = APIRouter(prefix="/api/v1", tags=["api"])
Caller = Annotated[SignedIn, Depends(api_user)]


class Me(BaseModel):
    email: str
    name: str
    role: str
    location_ids: list[str] | None  # None: every location (owner)


@router.get("/me", response_model=Me, summary="Who this token or session acts as")
def me(caller: Caller) -> Me:
    return Me(
        email=caller.email,
        name=caller.name,
        role=caller.role,
        location_ids=None if caller.role == "owner" else list(caller.location_ids),
    )

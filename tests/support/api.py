"""JSON API tokens for tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ringback.db import transaction
from ringback.staff import auth
from tests.conftest import Service
from tests.staff.conftest import add_user


@dataclass(frozen=True)
class Token:
    id: int
    headers: dict[str, str]


def make_token(
    service: Service, email: str, *, role: str = "owner", locations: list[str] | None = None
) -> Token:
    add_user(service, email, role=role, locations=locations)
    with transaction(service.runtime.deps.sessions) as session:
        user = auth.find_user(session, email)
        assert user is not None
        new = auth.create_api_token(session, user, "CRM sync", datetime.now(UTC))
    return Token(id=new.id, headers={"Authorization": f"Bearer {new.token}"})

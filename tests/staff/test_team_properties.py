"""Team rules as invariants, over random sequences of what owners and admins do on the
team page (an admin never makes or touches an owner):
the clinic always keeps an active owner; a deactivated account has no live session and no
working API token; a refused change changes nothing; a one-time link works once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from ringback.db import Base, make_engine, make_sessionmaker, transaction
from ringback.models import ApiToken, StaffSession, StaffUser
from ringback.staff import auth

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
KNOWN = {"glow-downtown", "glow-westside"}
PASSWORD = "correct horse battery staple"
PEOPLE = 4

Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(
            ["deactivate", "reactivate", "owner", "admin", "staff", "sign_in", "reset"]
        ),
        st.integers(0, PEOPLE - 1),  # who acts (used only if an active owner or admin)
        st.integers(0, PEOPLE - 1),  # on whom
    ),
    min_size=1,
    max_size=12,
)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def fresh_team(sessions: sessionmaker[Session]) -> list[int]:
    with transaction(sessions) as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))
        ids = []
        for n in range(PEOPLE):
            user = StaffUser(
                email=f"p{n}@glow.example",
                name=f"P{n}",
                role={0: "owner", 1: "admin"}.get(n, "staff"),
                location_ids=[] if n < 2 else ["glow-downtown"],
                password_hash="not-used",
                created_at=NOW,
                password_changed_at=NOW,
            )
            session.add(user)
            session.flush()
            ids.append(user.id)
        return ids


def snapshot(session: Session) -> list[tuple[int, str, list[str], bool]]:
    return [
        (u.id, u.role, list(u.location_ids or []), u.active)
        for u in session.scalars(select(StaffUser).order_by(StaffUser.id))
    ]


def act(session: Session, op: Op, ids: list[int], now: datetime, acting_role: str) -> None:
    kind, actor, target = op[0], ids[op[1]], ids[op[2]]
    if kind == "deactivate":
        auth.deactivate_user(
            session, target, acting_user_id=actor, acting_role=acting_role, now=now
        )
    elif kind == "reactivate":
        auth.reactivate_user(session, target, acting_role=acting_role)
    elif kind in ("owner", "admin", "staff"):
        auth.change_access(
            session,
            target,
            role=kind,
            location_ids=["glow-westside"],
            known_locations=KNOWN,
            acting_role=acting_role,
        )
    elif kind == "sign_in":
        user = session.get(StaffUser, target)
        assert user is not None
        if user.active:
            auth.start_session(session, user, now)
            auth.create_api_token(session, user, "crm", now)
    else:
        link = auth.reset_link(session, target, created_by=actor, acting_role=acting_role, now=now)
        auth.use_link(
            session, link.token, name="", password=PASSWORD, known_locations=KNOWN, now=now
        )
        with pytest.raises(auth.AccountError, match="link:"):
            auth.use_link(
                session, link.token, name="", password=PASSWORD, known_locations=KNOWN, now=now
            )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
def test_team_rules_hold_after_every_step(sessions: sessionmaker[Session], steps: list[Op]) -> None:
    ids = fresh_team(sessions)
    for n, op in enumerate(steps):
        now = NOW + timedelta(minutes=n)
        with sessions() as session:
            actor = session.get(StaffUser, ids[op[1]])
            assert actor is not None
            if not (actor.active and actor.role in ("owner", "admin")):
                continue  # the pages let only an active owner or admin act
            acting_role = actor.role
            before = snapshot(session)
        try:
            with transaction(sessions) as session:
                act(session, op, ids, now, acting_role)
        except auth.AccountError:
            with sessions() as session:
                assert snapshot(session) == before, op  # refused: nothing changed
        with sessions() as session:
            if acting_role == "admin":  # an admin neither makes nor touches an owner
                owners_before = [row for row in before if row[1] == "owner"]
                owners_after = [row for row in snapshot(session) if row[1] == "owner"]
                assert owners_after == owners_before, op
            owners = session.scalar(
                select(func.count()).where(StaffUser.role == "owner", StaffUser.active.is_(True))
            )
            assert owners >= 1, steps[: n + 1]
            for user in session.scalars(select(StaffUser).where(StaffUser.active.is_(False))):
                assert not session.scalar(
                    select(func.count()).where(StaffSession.user_id == user.id)
                )
                assert not session.scalar(
                    select(func.count()).where(
                        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
                    )
                )

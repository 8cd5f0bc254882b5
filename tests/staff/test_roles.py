"""Who may do what, over HTTP: owner, admin (office manager) and staff against every
protected page and the dangerous actions; and the team rules for an admin (no making
owners, no touching an owner's account), each refusal changing nothing."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from ringback.db import transaction
from ringback.models import ApiToken, Patient, StaffLink, StaffUser
from ringback.roles import CAPABILITIES, ROLES, can, role_can
from ringback.staff import auth
from tests.conftest import Service
from tests.patients.test_pages import seed
from tests.settings.conftest import store_settings
from tests.staff.conftest import add_user, page_csrf, sign_in

DOWNTOWN = "glow-downtown"
TEAM = "/staff/settings/team"

OWNER, ADMIN, STAFF = "owner", "admin", "staff"
EVERYONE = {OWNER, ADMIN, STAFF}
MANAGERS = {OWNER, ADMIN}

# (path, the roles that get it; everyone else gets 403)
PAGES: list[tuple[str, set[str]]] = [
    ("/staff/patients", EVERYONE),
    ("/staff/settings/tokens", EVERYONE),
    ("/staff/settings", MANAGERS),
    (f"/staff/settings/locations/{DOWNTOWN}", MANAGERS),
    (f"/staff/settings/locations/{DOWNTOWN}/services", MANAGERS),
    (f"/staff/settings/locations/{DOWNTOWN}/providers", MANAGERS),
    (f"/staff/settings/locations/{DOWNTOWN}/templates", MANAGERS),
    (f"/staff/settings/locations/{DOWNTOWN}/reminders", MANAGERS),
    (f"/staff/settings/locations/{DOWNTOWN}/booking-system", MANAGERS),
    ("/staff/settings/changes", MANAGERS),
    ("/staff/settings/texting-registration", MANAGERS),
    ("/staff/settings/booking-systems", MANAGERS),
    (TEAM, MANAGERS),
    ("/staff/settings/phone-numbers", {OWNER}),
    ("/staff/webhooks", {OWNER}),
]


def signed_in(service: Service, role: str) -> httpx.Client:
    email = f"{role}@glow.example"
    add_user(service, email, role=role, locations=[DOWNTOWN] if role == STAFF else None)
    return sign_in(service, email)


@pytest.fixture
def db_service(make_service: Callable[..., Service]) -> Service:
    service = make_service()
    store_settings(service)
    return service


def test_the_capability_table_keeps_the_dangerous_ones_with_the_owner() -> None:
    assert ROLES == ("owner", "admin", "staff")
    for capability in ("manage_owners", "all_api_tokens", "webhooks", "phone_numbers"):
        assert role_can(OWNER, capability)  # type: ignore[arg-type]
        assert not role_can(ADMIN, capability)  # type: ignore[arg-type]
    assert not role_can(ADMIN, "erase_patients")
    assert CAPABILITIES[STAFF] == frozenset()
    assert not role_can("someone", "settings")  # an unknown role may do nothing


@pytest.mark.parametrize("role", [OWNER, ADMIN, STAFF])
def test_each_role_against_each_protected_page(db_service: Service, role: str) -> None:
    client = signed_in(db_service, role)
    for path, allowed in PAGES:
        got = client.get(path)
        expected = 200 if role in allowed else 403
        assert got.status_code == expected, (role, path, got.status_code)
    # The menu offers only what the role may open.
    menu = client.get("/staff/settings/tokens").text
    assert ('href="/staff/settings"' in menu) is (role in MANAGERS)
    assert ('href="/staff/settings/team"' in menu) is (role in MANAGERS)
    assert ('href="/staff/webhooks"' in menu) is (role == OWNER)
    assert ('href="/staff/settings/phone-numbers"' in menu) is (role == OWNER)


def test_an_admin_cannot_connect_numbers_add_webhooks_or_erase_patients(service: Service) -> None:
    ana, _ = seed(service)
    number = service.twilio.add_number("+13105550100")
    admin = signed_in(service, ADMIN)
    csrf = page_csrf(admin, "/staff/settings/tokens")
    connect = admin.post(
        "/staff/settings/phone-numbers/connect",
        data={"csrf_token": csrf, "provider": "twilio", "number": "+13105550100"},
    )
    assert connect.status_code == 403
    assert service.twilio.number(number)["voice_url"] != f"{service.public_url}/twilio/voice"  # type: ignore[index]
    hook = admin.post(
        "/staff/webhooks/endpoints",
        data={"csrf_token": csrf, "url": "https://crm.example/hook", "events": "booking.created"},
    )
    assert hook.status_code == 403
    # An admin sees every location's patients, but only an owner erases one.
    record = admin.get(f"/staff/patients/{ana}")
    assert record.status_code == 200
    assert f'action="/staff/patients/{ana}/delete"' not in record.text
    erase = admin.post(
        f"/staff/patients/{ana}/delete", data={"csrf_token": csrf, "confirm": "DELETE"}
    )
    assert erase.status_code == 403
    assert service.scalar(select(Patient.deleted_at).where(Patient.id == ana)) is None


def test_an_admin_manages_only_their_own_api_tokens(service: Service) -> None:
    owner = signed_in(service, OWNER)
    owner_csrf = page_csrf(owner, "/staff/settings/tokens")
    owner.post("/staff/settings/tokens", data={"csrf_token": owner_csrf, "name": "owner crm"})
    theirs = service.scalar(select(ApiToken.id))
    admin = signed_in(service, ADMIN)
    page = admin.get("/staff/settings/tokens")
    assert "owner crm" not in page.text
    csrf = page_csrf(admin, "/staff/settings/tokens")
    revoke = admin.post(f"/staff/settings/tokens/{theirs}/revoke", data={"csrf_token": csrf})
    assert revoke.status_code == 404
    assert service.scalar(select(ApiToken.revoked_at).where(ApiToken.id == theirs)) is None


def test_the_api_sees_every_location_for_an_admin(service: Service) -> None:
    add_user(service, "admin@glow.example", role=ADMIN)
    add_user(service, "desk@glow.example", role=STAFF, locations=[DOWNTOWN])
    for email, where in (("admin@glow.example", None), ("desk@glow.example", [DOWNTOWN])):
        with transaction(service.runtime.deps.sessions) as session:
            user = auth.find_user(session, email)
            assert user is not None
            token = auth.create_api_token(session, user, "t", service.clock()).token
        me = httpx.get(
            service.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert me.status_code == 200
        assert me.json()["location_ids"] == where


def _post(client: httpx.Client, path: str, data: dict[str, object]) -> httpx.Response:
    return client.post(path, data={"csrf_token": page_csrf(client, TEAM), **data})


def _state(service: Service) -> list[tuple[str, str, list[str], bool]]:
    return [
        (u.email, u.role, list(u.location_ids or []), u.active)
        for u in service.rows(select(StaffUser).order_by(StaffUser.email))
    ]


def test_an_admin_invites_and_changes_staff_and_admins_but_not_owners(service: Service) -> None:
    owner_id = add_user(service, "owner@glow.example")
    desk_id = add_user(service, "desk@glow.example", role=STAFF, locations=[DOWNTOWN])
    admin = signed_in(service, ADMIN)

    # Inviting an admin works: an admin needs no locations (they see all).
    made = _post(admin, TEAM + "/invite", {"email": "mia@glow.example", "role": ADMIN})
    assert made.status_code == 200, made.text
    assert "mia@glow.example (admin)" in made.text
    # The team page offers no owner role to an admin, and an owner's row has no actions.
    page = admin.get(TEAM).text
    assert '<option value="owner"' not in page
    assert f'action="/staff/settings/team/{owner_id}/deactivate"' not in page
    assert "Only an owner can change an owner's account." in page

    before = _state(service)
    links = service.scalar(select(StaffLink.id).order_by(StaffLink.id.desc()))
    refusals = [
        (TEAM + "/invite", {"email": "boss@glow.example", "role": OWNER}, "role: only an owner"),
        (f"{TEAM}/{desk_id}/access", {"role": OWNER}, "role: only an owner"),
        (f"{TEAM}/{owner_id}/access", {"role": STAFF, "location": [DOWNTOWN]}, "user: only"),
        (f"{TEAM}/{owner_id}/deactivate", {}, "user: only an owner"),
        (f"{TEAM}/{owner_id}/reset", {}, "user: only an owner"),
    ]
    for path, data, message in refusals:
        refused = _post(admin, path, data)
        assert refused.status_code == 403, (path, refused.status_code)
        assert message in refused.text.replace("&#39;", "'"), path
    assert _state(service) == before
    assert service.scalar(select(StaffLink.id).order_by(StaffLink.id.desc())) == links

    # Staff to admin and back, and deactivating staff, are the admin's to do.
    promoted = _post(admin, f"{TEAM}/{desk_id}/access", {"role": ADMIN})
    assert promoted.status_code == 303
    assert service.scalar(select(StaffUser.role).where(StaffUser.id == desk_id)) == ADMIN
    assert service.scalar(select(StaffUser.location_ids).where(StaffUser.id == desk_id)) == []
    back = _post(admin, f"{TEAM}/{desk_id}/access", {"role": STAFF, "location": [DOWNTOWN]})
    assert back.status_code == 303
    assert _post(admin, f"{TEAM}/{desk_id}/deactivate", {}).status_code == 303
    assert service.scalar(select(StaffUser.active).where(StaffUser.id == desk_id)) is False


def test_an_owner_makes_an_admin_and_an_owner(service: Service) -> None:
    add_user(service, "owner@glow.example")
    desk_id = add_user(service, "desk@glow.example", role=STAFF, locations=[DOWNTOWN])
    owner = sign_in(service, "owner@glow.example")
    assert '<option value="owner"' in owner.get(TEAM).text
    assert _post(owner, f"{TEAM}/{desk_id}/access", {"role": ADMIN}).status_code == 303
    assert _post(owner, f"{TEAM}/{desk_id}/access", {"role": OWNER}).status_code == 303
    assert service.scalar(select(StaffUser.role).where(StaffUser.id == desk_id)) == OWNER
    bad = _post(owner, f"{TEAM}/{desk_id}/access", {"role": "manager"})
    assert bad.status_code == 400
    assert "role: expected one of owner, admin, staff, got &#39;manager&#39;" in bad.text


def test_staff_cannot_use_the_team_actions(service: Service) -> None:
    owner_id = add_user(service, "owner@glow.example")
    desk = signed_in(service, STAFF)
    csrf = page_csrf(desk, "/staff/settings/tokens")
    for path in (f"{TEAM}/{owner_id}/deactivate", f"{TEAM}/{owner_id}/reset"):
        assert desk.post(path, data={"csrf_token": csrf}).status_code == 403
    invite = desk.post(
        TEAM + "/invite", data={"csrf_token": csrf, "email": "x@glow.example", "role": ADMIN}
    )
    assert invite.status_code == 403


def test_can_reads_the_role_of_any_user_like_object(service: Service) -> None:
    add_user(service, "admin@glow.example", role=ADMIN)
    with service.db() as session:
        user = auth.find_user(session, "admin@glow.example")
        assert user is not None
        assert can(user, "settings")
        assert not can(user, "webhooks")
        assert user.can_see("glow-westside")

"""The team page: one-time invitation and reset links, roles and locations, and
deactivation that ends a live session and an API token at once. Owners only, CSRF on
every form, bad input saves nothing."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from ringback.db import transaction
from ringback.models import ApiToken, StaffLink, StaffSession, StaffUser
from ringback.staff import auth
from tests.conftest import Service, wait_for
from tests.staff.conftest import PASSWORD, add_user, page_csrf, sign_in
from tests.staff.test_alerts import LocalSmtp, smtp_server  # noqa: F401 - the fixture

TEAM = "/staff/settings/team"
NEW_PASSWORD = "a much longer new passphrase"


def post(client: httpx.Client, path: str, data: dict[str, object] | None = None) -> httpx.Response:
    form = {"csrf_token": page_csrf(client, TEAM), **(data or {})}
    return client.post(path, data=form)


def shown_link(response: httpx.Response) -> str:
    match = re.search(r'<code id="one-time-link">([^<]+)</code>', response.text)
    assert match, "no one-time link on the page"
    return html.unescape(match.group(1))


def error_field(response: httpx.Response) -> str:
    match = re.search(r'class="error field-error" role="alert" data-field="([^"]+)"', response.text)
    assert match, "no field error on the page"
    return match.group(1)


def spend(service: Service, url: str, **fields: str) -> httpx.Response:
    """Open a one-time link in a fresh browser and submit its form."""
    path = url.removeprefix(service.public_url)
    with httpx.Client(base_url=service.url, timeout=10) as browser:
        page = browser.get(path)
        if page.status_code != 200:
            return page
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf
        return browser.post(path, data={"csrf_token": csrf.group(1), **fields})


def count(service: Service, model: type) -> int:
    return int(service.scalar(select(func.count()).select_from(model)))


def test_an_invitation_link_makes_the_account_once(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    page = owner.get(TEAM)
    assert page.status_code == 200
    assert "Email is not set up" in page.text
    made = post(
        owner,
        TEAM + "/invite",
        {"email": " Nina@Glow.example ", "role": "staff", "location": ["glow-westside"]},
    )
    assert made.status_code == 200
    url = shown_link(made)
    assert url.startswith(service.public_url + "/staff/link/")
    assert "nina@glow.example (staff)" in made.text  # waiting to accept
    # The link is not stored: only its hash is.
    token = url.rsplit("/", 1)[1]
    assert service.scalar(select(StaffLink.token_hash)) != token
    assert url not in owner.get(TEAM).text  # shown once
    assert made.headers["cache-control"] == "no-store"
    with httpx.Client(base_url=service.url, timeout=10) as browser:
        landing = browser.get(url.removeprefix(service.public_url))
    assert landing.headers["referrer-policy"] == "no-referrer"

    assert error_field(spend(service, url, name="Nina", password="short", confirm="short")) == (
        "password"
    )
    assert error_field(
        spend(service, url, name="", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    ) == ("name")
    differ = spend(service, url, name="Nina", password=NEW_PASSWORD, confirm=NEW_PASSWORD + "x")
    assert differ.status_code == 400
    assert count(service, StaffUser) == 1  # nothing made by bad input
    with httpx.Client(base_url=service.url, timeout=10) as stranger:
        forged = stranger.post(
            url.removeprefix(service.public_url),
            data={
                "csrf_token": "forged",
                "name": "N",
                "password": NEW_PASSWORD,
                "confirm": NEW_PASSWORD,
            },
        )
    assert forged.status_code == 403
    assert count(service, StaffUser) == 1

    done = spend(service, url, name="Nina Reyes", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert done.status_code == 200
    assert "All set" in done.text
    nina = service.scalar(select(StaffUser).where(StaffUser.email == "nina@glow.example"))
    assert (nina.name, nina.role, nina.location_ids) == ("Nina Reyes", "staff", ["glow-westside"])
    again = spend(service, url, name="Mallory", password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert again.status_code == 410
    assert count(service, StaffUser) == 2
    signed_in = sign_in(service, "nina@glow.example", NEW_PASSWORD)
    assert signed_in.get("/staff").status_code == 200


def test_an_expired_or_replaced_invitation_does_not_work(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    first = shown_link(post(owner, TEAM + "/invite", {"email": "a@glow.example", "role": "owner"}))
    second = shown_link(post(owner, TEAM + "/invite", {"email": "a@glow.example", "role": "owner"}))
    assert spend(service, first).status_code == 410  # the newer link replaced it
    service.clock.advance(auth.INVITE_LIFETIME + timedelta(minutes=1))
    assert (
        spend(service, second, name="A", password=NEW_PASSWORD, confirm=NEW_PASSWORD).status_code
        == 410
    )
    assert count(service, StaffUser) == 1


def test_bad_invitations_say_what_is_wrong_and_save_nothing(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    cases = [
        ({"email": "not-an-email", "role": "staff", "location": "glow-downtown"}, "email"),
        ({"email": "b@glow.example", "role": "manager"}, "role"),
        ({"email": "b@glow.example", "role": "staff"}, "location"),
        ({"email": "b@glow.example", "role": "staff", "location": "nowhere"}, "location"),
        ({"email": "OWNER@glow.example", "role": "owner"}, "email"),
    ]
    for data, field in cases:
        refused = post(owner, TEAM + "/invite", data)
        assert refused.status_code == 400, data
        assert error_field(refused) == field, data
        assert "one-time-link" not in refused.text
    assert 'value="b@glow.example"' in refused.text or "OWNER@glow.example" in refused.text
    assert count(service, StaffLink) == 0
    no_csrf = owner.post(TEAM + "/invite", data={"email": "c@glow.example", "role": "owner"})
    assert no_csrf.status_code == 403
    assert count(service, StaffLink) == 0


def test_staff_cannot_see_or_use_the_team_page(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner_id = service.scalar(select(StaffUser.id))
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(service, "desk@glow.example")
    assert desk.get(TEAM).status_code == 403
    csrf = page_csrf(desk, "/staff")
    for path, data in [
        (TEAM + "/invite", {"email": "x@glow.example", "role": "owner"}),
        (f"{TEAM}/{owner_id}/deactivate", {}),
        (f"{TEAM}/{owner_id}/reset", {}),
        (f"{TEAM}/{owner_id}/access", {"role": "staff", "location": "glow-downtown"}),
    ]:
        assert desk.post(path, data={"csrf_token": csrf, **data}).status_code == 403, path
    assert count(service, StaffLink) == 0
    assert service.scalar(select(StaffUser.active).where(StaffUser.id == owner_id)) is True
    anonymous = service.http.get(service.url + TEAM)
    assert anonymous.status_code in (302, 303)
    assert "Team" not in desk.get("/staff").text.split("<main")[0]  # no nav link for staff


def test_deactivating_ends_a_live_session_and_a_token_at_once(service: Service) -> None:
    add_user(service, "owner@glow.example")
    desk_id = add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(service, "desk@glow.example")
    with transaction(service.runtime.deps.sessions) as session:
        user = session.get(StaffUser, desk_id)
        assert user is not None
        token = auth.create_api_token(session, user, "crm", datetime.now(UTC)).token
    bearer = {"Authorization": f"Bearer {token}"}
    assert service.http.get(service.url + "/api/v1/me", headers=bearer).status_code == 200
    assert desk.get("/staff").status_code == 200

    owner = sign_in(service, "owner@glow.example")
    done = post(owner, f"{TEAM}/{desk_id}/deactivate")
    assert done.status_code == 303
    assert service.http.get(service.url + "/api/v1/me", headers=bearer).status_code == 401
    assert desk.get("/staff").status_code == 303  # back to sign-in
    assert service.scalar(select(func.count()).where(StaffSession.user_id == desk_id)) == 0
    assert service.scalar(select(ApiToken.revoked_at)) is not None
    page = owner.get(TEAM + "?done=deactivated").text
    assert "API tokens revoked" in page
    # Signing in again is refused too, until an owner reactivates the account.
    with httpx.Client(base_url=service.url) as again:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', again.get("/staff/login").text)
        assert csrf
        refused = again.post(
            "/staff/login",
            data={"email": "desk@glow.example", "password": PASSWORD, "csrf_token": csrf.group(1)},
        )
        assert refused.status_code == 401
    assert post(owner, f"{TEAM}/{desk_id}/deactivate").status_code == 400  # already
    assert post(owner, f"{TEAM}/{desk_id}/reactivate").status_code == 303
    assert sign_in(service, "desk@glow.example").get("/staff").status_code == 200
    # The old token stays revoked.
    assert service.http.get(service.url + "/api/v1/me", headers=bearer).status_code == 401


def test_an_owner_cannot_lock_the_clinic_out(service: Service) -> None:
    owner_id = add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    self_off = post(owner, f"{TEAM}/{owner_id}/deactivate")
    assert self_off.status_code == 400
    assert "your own account" in html.unescape(self_off.text)
    demoted = post(
        owner, f"{TEAM}/{owner_id}/access", {"role": "staff", "location": "glow-downtown"}
    )
    assert demoted.status_code == 400
    assert error_field(demoted) == "role"
    assert service.scalar(select(StaffUser.role)) == "owner"
    assert post(owner, f"{TEAM}/999/deactivate").status_code == 400


def test_access_changes_take_roles_and_locations(service: Service) -> None:
    add_user(service, "owner@glow.example")
    desk_id = add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    owner = sign_in(service, "owner@glow.example")
    moved = post(
        owner,
        f"{TEAM}/{desk_id}/access",
        {"role": "staff", "location": ["glow-downtown", "glow-westside"]},
    )
    assert moved.status_code == 303
    user = service.scalar(select(StaffUser).where(StaffUser.id == desk_id))
    assert user.location_ids == ["glow-downtown", "glow-westside"]
    bad = post(owner, f"{TEAM}/{desk_id}/access", {"role": "staff"})
    assert bad.status_code == 400
    assert error_field(bad) == "location"
    user = service.scalar(select(StaffUser).where(StaffUser.id == desk_id))
    assert user.location_ids == ["glow-downtown", "glow-westside"]  # unchanged
    assert post(owner, f"{TEAM}/{desk_id}/access", {"role": "owner"}).status_code == 303
    assert service.scalar(select(StaffUser.role).where(StaffUser.id == desk_id)) == "owner"


def test_a_reset_link_sets_a_new_password_and_signs_out_everywhere(
    make_service: Callable[..., Service],
    smtp_server: Callable[..., LocalSmtp],  # noqa: F811
) -> None:
    smtp = smtp_server()
    service = make_service(
        settings_overrides={
            "RINGBACK_SMTP_URL": smtp.url,
            "RINGBACK_ALERT_FROM": "alerts@glow.example",
        }
    )
    add_user(service, "owner@glow.example")
    desk_id = add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(service, "desk@glow.example")
    owner = sign_in(service, "owner@glow.example")
    sent = post(owner, f"{TEAM}/{desk_id}/reset")
    assert sent.status_code == 200
    assert "emailed to <strong>desk@glow.example</strong>" in sent.text
    assert "one-time-link" not in sent.text
    envelope, mail = wait_for(lambda: smtp.messages, what="the reset email")[0]
    assert envelope.rcpt_tos == ["desk@glow.example"]
    match = re.search(r"(https?://\S+/staff/link/\S+)", mail.get_content())
    assert match
    url = match.group(1)
    assert desk.get("/staff").status_code == 200
    assert spend(service, url, password=NEW_PASSWORD, confirm=NEW_PASSWORD).status_code == 200
    assert desk.get("/staff").status_code == 303  # the old browser is signed out
    assert sign_in(service, "desk@glow.example", NEW_PASSWORD).get("/staff").status_code == 200
    assert spend(service, url, password=PASSWORD + "!", confirm=PASSWORD + "!").status_code == 410

    invited = post(owner, TEAM + "/invite", {"email": "new@glow.example", "role": "owner"})
    assert "Invitation emailed to <strong>new@glow.example</strong>" in invited.text
    wait_for(lambda: len(smtp.messages) == 2, what="the invitation email")
    assert smtp.messages[1][1]["Subject"] == "You're invited to Ringback"


def test_two_racing_uses_of_one_link_make_one_account(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    url = shown_link(post(owner, TEAM + "/invite", {"email": "r@glow.example", "role": "owner"}))
    path = url.removeprefix(service.public_url)
    browsers = [httpx.Client(base_url=service.url, timeout=20) for _ in range(4)]
    forms = []
    for n, browser in enumerate(browsers):
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).text)
        assert csrf
        forms.append(
            {"csrf_token": csrf.group(1), "name": f"R{n}", "password": NEW_PASSWORD + str(n)}
        )
    for form in forms:
        form["confirm"] = form["password"]
    with ThreadPoolExecutor(len(browsers)) as pool:
        answers = list(
            pool.map(lambda bf: bf[0].post(path, data=bf[1]), zip(browsers, forms, strict=True))
        )
    for browser in browsers:
        browser.close()
    assert sorted(a.status_code for a in answers) == [200, 410, 410, 410]
    assert service.scalar(select(func.count()).where(StaffUser.email == "r@glow.example")) == 1

"""The API tokens page: a secret shown once that works at once, last used, revoke; staff
see and revoke only their own, an owner everyone's; CSRF and bad input save nothing."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select

from ringback.models import ApiToken
from tests.conftest import Service
from tests.staff.conftest import add_user, page_csrf, sign_in

TOKENS = "/staff/settings/tokens"


def create(client: httpx.Client, name: str) -> httpx.Response:
    return client.post(TOKENS, data={"csrf_token": page_csrf(client, TOKENS), "name": name})


def secret_of(response: httpx.Response) -> str:
    match = re.search(r'<code id="new-token">([^<]+)</code>', response.text)
    assert match, "no new token on the page"
    return match.group(1)


def me(service: Service, secret: str) -> httpx.Response:
    return service.http.get(
        service.url + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"}
    )


def test_a_token_is_shown_once_works_and_is_revoked(service: Service) -> None:
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(service, "desk@glow.example")
    made = create(desk, "  HubSpot sync ")
    assert made.status_code == 200
    secret = secret_of(made)
    assert secret.startswith("rb_")
    assert secret not in desk.get(TOKENS).text  # shown once
    assert service.scalar(select(ApiToken.token_hash)) != secret
    page = desk.get(TOKENS).text
    assert "HubSpot sync" in page
    assert "never" in page
    assert me(service, secret).status_code == 200
    assert "never" not in desk.get(TOKENS).text.split("Your tokens")[1]  # last used now shown
    token_id = service.scalar(select(ApiToken.id))
    revoked = desk.post(f"{TOKENS}/{token_id}/revoke", data={"csrf_token": page_csrf(desk, TOKENS)})
    assert revoked.status_code == 303
    assert me(service, secret).status_code == 401
    again = desk.post(f"{TOKENS}/{token_id}/revoke", data={"csrf_token": page_csrf(desk, TOKENS)})
    assert again.status_code == 409


def test_bad_input_and_missing_csrf_save_nothing(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    for name, field in [("   ", "name"), ("x" * 121, "name")]:
        refused = create(owner, name)
        assert refused.status_code == 400
        assert f'data-field="{field}"' in refused.text
    no_csrf = owner.post(TOKENS, data={"name": "crm"})
    assert no_csrf.status_code == 403
    assert service.scalar(select(func.count()).select_from(ApiToken)) == 0
    assert service.http.get(service.url + TOKENS).status_code in (302, 303)


def test_staff_see_their_own_tokens_and_owners_see_all(service: Service) -> None:
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    add_user(service, "west@glow.example", role="staff", locations=["glow-westside"])
    desk, west = sign_in(service, "desk@glow.example"), sign_in(service, "west@glow.example")
    desk_secret = secret_of(create(desk, "desk sheet"))
    create(west, "west crm")
    assert "west crm" not in desk.get(TOKENS).text
    west_id = service.scalar(select(ApiToken.id).where(ApiToken.name == "west crm"))
    desk_id = service.scalar(select(ApiToken.id).where(ApiToken.name == "desk sheet"))
    stolen = desk.post(f"{TOKENS}/{west_id}/revoke", data={"csrf_token": page_csrf(desk, TOKENS)})
    assert stolen.status_code == 404
    assert service.scalar(select(ApiToken.revoked_at).where(ApiToken.id == west_id)) is None
    owner = sign_in(service, "owner@glow.example")
    page = owner.get(TOKENS).text
    assert "Everyone's tokens" in page
    assert "desk sheet" in page
    assert "west crm" in page
    assert (
        owner.post(
            f"{TOKENS}/{desk_id}/revoke", data={"csrf_token": page_csrf(owner, TOKENS)}
        ).status_code
        == 303
    )
    assert me(service, desk_secret).status_code == 401

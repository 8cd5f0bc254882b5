"""Staff sign-in, sessions, CSRF, throttling and API tokens, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from ringback.db import transaction
from ringback.staff import auth
from tests.conftest import Service
from tests.staff.conftest import PASSWORD, add_user, login_form, sign_in


def test_first_run_says_how_to_create_the_first_owner(service: Service) -> None:
    page = service.http.get(service.url + "/staff/login")
    assert "No staff accounts yet" in page.text
    assert "ringback users add you@clinic.example" in page.text
    add_user(service, "owner@glow.example")
    assert "No staff accounts yet" not in service.http.get(service.url + "/staff/login").text


def test_sign_in_sets_a_secure_http_only_session_cookie(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = httpx.Client(base_url=service.url, follow_redirects=False)
    csrf = login_form(client, service)
    response = client.post(
        "/staff/login",
        data={
            "email": "Owner@Glow.example",
            "password": PASSWORD,
            "csrf_token": csrf,
            "next": "/staff/conversations/1",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/conversations/1"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("rb_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json() == {
        "email": "owner@glow.example",
        "name": "Owner",
        "role": "owner",
        "location_ids": None,
    }


def test_cookie_is_marked_secure_behind_https(make_service: object) -> None:
    service = make_service(public_url="https://rb.example")  # type: ignore[operator]
    add_user(service, "owner@glow.example")
    client = httpx.Client(base_url=service.url, follow_redirects=False)
    csrf = login_form(client, service)
    # Behind the TLS proxy the browser sends its Secure cookie back; plain-HTTP httpx won't.
    response = client.post(
        "/staff/login",
        data={"email": "owner@glow.example", "password": PASSWORD, "csrf_token": csrf},
        headers={"Cookie": f"rb_login_csrf={csrf}"},
    )
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("rb_session="))
    assert "Secure" in cookie


def test_wrong_password_and_unknown_email_look_the_same(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = httpx.Client(base_url=service.url)
    for email in ("owner@glow.example", "nobody@glow.example"):
        csrf = login_form(client, service)
        response = client.post(
            "/staff/login",
            data={"email": email, "password": "wrong password!!", "csrf_token": csrf},
        )
        assert response.status_code == 401
        assert "match an account" in response.text
        assert "rb_session" not in client.cookies


def test_login_without_the_form_token_is_refused(service: Service) -> None:
    add_user(service, "owner@glow.example")
    response = service.http.post(
        service.url + "/staff/login", data={"email": "owner@glow.example", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "expired" in response.text


def test_sign_in_is_throttled_after_repeated_failures(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = httpx.Client(base_url=service.url)
    codes = []
    for _ in range(6):
        csrf = login_form(client, service)
        codes.append(
            client.post(
                "/staff/login",
                data={
                    "email": "owner@glow.example",
                    "password": "not the password",
                    "csrf_token": csrf,
                },
            ).status_code
        )
    assert codes == [401] * 5 + [429]
    # Even the right password waits out the window.
    csrf = login_form(client, service)
    blocked = client.post(
        "/staff/login",
        data={"email": "owner@glow.example", "password": PASSWORD, "csrf_token": csrf},
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_api_answers_401_without_a_token_or_session(service: Service) -> None:
    api = service.http.get(service.url + "/api/v1/me")
    assert api.status_code == 401
    assert api.headers["www-authenticate"] == "Bearer"


def test_open_redirects_are_refused(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = httpx.Client(base_url=service.url, follow_redirects=False)
    csrf = login_form(client, service)
    response = client.post(
        "/staff/login",
        data={
            "email": "owner@glow.example",
            "password": PASSWORD,
            "csrf_token": csrf,
            "next": "//evil.example/x",
        },
    )
    assert response.headers["location"] == "/staff"


def test_logout_needs_the_csrf_token_and_ends_the_session(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    assert client.post("/staff/logout").status_code == 403
    with transaction(service.runtime.deps.sessions) as session:
        from sqlalchemy import select

        from ringback.models import StaffSession

        csrf = session.scalars(select(StaffSession.csrf_token)).one()
    assert client.post("/staff/logout", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_api_tokens_are_hashed_at_rest_and_revocable(service: Service) -> None:
    add_user(service, "staff@glow.example", role="staff", locations=["glow-downtown"])
    now = datetime.now(UTC)
    with transaction(service.runtime.deps.sessions) as session:
        user = auth.find_user(session, "staff@glow.example")
        assert user is not None
        token = auth.create_api_token(session, user, "CRM sync", now)
    from sqlalchemy import select

    from ringback.models import ApiToken

    stored = service.scalar(select(ApiToken))
    assert token.token not in (stored.token_hash, stored.prefix)
    headers = {"Authorization": f"Bearer {token.token}"}
    me = service.http.get(service.url + "/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["location_ids"] == ["glow-downtown"]
    with transaction(service.runtime.deps.sessions) as session:
        assert auth.revoke_api_token(session, token.id, now)
    assert service.http.get(service.url + "/api/v1/me", headers=headers).status_code == 401
    bad = service.http.get(service.url + "/api/v1/me", headers={"Authorization": "Bearer rb_nope"})
    assert bad.status_code == 401


def test_reset_password_signs_out_everywhere(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    assert client.get("/api/v1/me").status_code == 200
    with transaction(service.runtime.deps.sessions) as session:
        auth.reset_password(
            session, "owner@glow.example", "another long password", datetime.now(UTC)
        )
    assert client.get("/api/v1/me").status_code == 401
    sign_in(service, "owner@glow.example", "another long password")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"email": "not-an-email"}, "email: expected an address"),
        ({"password": "short"}, "password: use at least 12 characters"),
        ({"role": "manager"}, "role: expected one of owner, admin, staff"),
        ({"role": "staff", "location_ids": []}, "location: a staff account needs"),
        ({"role": "staff", "location_ids": ["nowhere"]}, "location: no location 'nowhere'"),
        ({"name": " "}, "name: must not be empty"),
    ],
)
def test_account_validation_names_the_field(
    service: Service, changes: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "email": "a@glow.example",
        "name": "A",
        "role": "owner",
        "password": PASSWORD,
        "location_ids": [],
    }
    values.update(changes)
    with (
        transaction(service.runtime.deps.sessions) as session,
        pytest.raises(auth.AccountError, match=message),
    ):
        auth.create_user(
            session, known_locations={"glow-downtown"}, now=datetime.now(UTC), **values
        )  # type: ignore[arg-type]


def test_passwords_are_argon2_hashed(service: Service) -> None:
    add_user(service, "owner@glow.example")
    from sqlalchemy import select

    from ringback.models import StaffUser

    stored = service.scalar(select(StaffUser.password_hash))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored

"""A password reset or a deactivation ends the account's access everywhere at once: every
signed-in browser is signed out and every API token is revoked, whichever way it is done
(the team page, a one-time reset link, ``ringback users ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from ringback.models import StaffUser
from tests.conftest import Service
from tests.settings.test_team import NEW_PASSWORD, TEAM, post, shown_link, spend
from tests.staff.conftest import PASSWORD, add_user, sign_in
from tests.support.api import Token, make_token

DESK = "desk@glow.example"


def cli(service: Service, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``ringback ARGS`` in a subprocess on the service's database, as an operator runs it."""
    env = {
        **os.environ,
        "RINGBACK_DATABASE_URL": service.runtime.settings.resolved_database_url,
        "RINGBACK_CONFIG": str(service.config_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "ringback.cli", *args],
        input=stdin + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def desk_with_access(service: Service) -> tuple[int, httpx.Client, Token]:
    """The desk account signed in on a browser, with an API token of its own."""
    token = make_token(service, DESK, role="staff", locations=["glow-downtown"])
    browser = sign_in(service, DESK)
    assert browser.get("/staff").status_code == 200
    assert service.http.get(service.url + "/api/v1/me", headers=token.headers).status_code == 200
    assert browser.get("/api/v1/me").status_code == 200
    return token.id, browser, token


def assert_no_access(service: Service, browser: httpx.Client, token: Token) -> None:
    assert browser.get("/staff").status_code == 303  # back to sign-in
    assert browser.get("/api/v1/me").status_code == 401  # the session cookie is dead
    response = service.http.get(service.url + "/api/v1/me", headers=token.headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "Authorization: API token is unknown or revoked"


def assert_owner_untouched(service: Service, owner: httpx.Client) -> None:
    assert owner.get("/staff").status_code == 200


def desk_id(service: Service) -> int:
    return int(service.scalar(select(StaffUser.id).where(StaffUser.email == DESK)))


def _deactivate_on_the_team_page(service: Service, owner: httpx.Client) -> None:
    done = post(owner, f"{TEAM}/{desk_id(service)}/deactivate")
    assert done.status_code == 303, done.text


def _reset_link_on_the_team_page(service: Service, owner: httpx.Client) -> None:
    url = shown_link(post(owner, f"{TEAM}/{desk_id(service)}/reset"))
    used = spend(service, url, password=NEW_PASSWORD, confirm=NEW_PASSWORD)
    assert used.status_code == 200, used.text


def _reset_password_cli(service: Service, owner: httpx.Client) -> None:
    done = cli(service, "users", "reset-password", DESK, "--password-stdin", stdin=NEW_PASSWORD)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"password reset for {DESK}"


def _deactivate_cli(service: Service, owner: httpx.Client) -> None:
    done = cli(service, "users", "deactivate", DESK)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"deactivated {DESK}"


@pytest.mark.parametrize(
    "revoke",
    [
        _deactivate_on_the_team_page,
        _reset_link_on_the_team_page,
        _reset_password_cli,
        _deactivate_cli,
    ],
    ids=["team-deactivate", "team-reset-link", "cli-reset-password", "cli-deactivate"],
)
def test_every_way_to_reset_or_deactivate_ends_sessions_and_tokens(
    service: Service, revoke: Callable[[Service, httpx.Client], None]
) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    _, browser, token = desk_with_access(service)
    revoke(service, owner)
    assert_no_access(service, browser, token)
    assert_owner_untouched(service, owner)


def test_after_a_reset_the_new_password_signs_in_and_new_tokens_work(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    _, browser, token = desk_with_access(service)
    _reset_link_on_the_team_page(service, owner)
    assert_no_access(service, browser, token)
    assert sign_in(service, DESK, NEW_PASSWORD).get("/staff").status_code == 200
    fresh = make_token(service, "other@glow.example")  # tokens made later are unaffected
    assert service.http.get(service.url + "/api/v1/me", headers=fresh.headers).status_code == 200


def test_the_cli_refuses_to_deactivate_the_only_owner_or_an_unknown_email(
    service: Service,
) -> None:
    add_user(service, "owner@glow.example")
    only = cli(service, "users", "deactivate", "owner@glow.example")
    assert only.returncode == 2
    assert "owner@glow.example is the only owner" in only.stderr
    unknown = cli(service, "users", "deactivate", "nobody@glow.example")
    assert unknown.returncode == 2
    assert "email: no account for nobody@glow.example" in unknown.stderr
    assert sign_in(service, "owner@glow.example", PASSWORD).get("/staff").status_code == 200
    add_user(service, DESK, role="staff", locations=["glow-downtown"])
    assert cli(service, "users", "deactivate", DESK).returncode == 0
    again = cli(service, "users", "reactivate", DESK)
    assert again.returncode == 0, again.stderr
    assert sign_in(service, DESK).get("/staff").status_code == 200

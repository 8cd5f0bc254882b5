"""Request bodies are capped as they arrive: a body is refused (413) exactly when it has
more bytes than its limit, whether it declares a Content-Length or comes chunked."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ringback.config import Settings
from tests.conftest import Service

LIMIT = 2048
UPLOAD_LIMIT = 8192


@pytest.fixture
def limited(make_service: Callable[..., Service]) -> Service:
    return make_service(
        settings_overrides={
            "RINGBACK_MAX_BODY_BYTES": LIMIT,
            "RINGBACK_MAX_UPLOAD_BYTES": UPLOAD_LIMIT,
        }
    )


def chunks(body: bytes, size: int = 700) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(size=st.integers(min_value=0, max_value=3 * LIMIT), chunked=st.booleans())
@example(size=LIMIT, chunked=False)
@example(size=LIMIT, chunked=True)
@example(size=LIMIT + 1, chunked=False)
@example(size=LIMIT + 1, chunked=True)
def test_a_body_is_refused_exactly_when_it_is_over_the_limit(
    limited: Service, size: int, chunked: bool
) -> None:
    body = b"a" * size
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    # A generator has no length: httpx sends it chunked, with no Content-Length to trust.
    content = chunks(body) if chunked else body
    response = limited.http.post(limited.url + "/twilio/sms", content=content, headers=headers)
    # Within the limit the body reaches the signature check (unsigned: 403).
    assert response.status_code == (413 if size > LIMIT else 403), (size, chunked)
    if size > LIMIT:
        assert f"{LIMIT} bytes" in response.json()["detail"]


def test_forms_and_the_api_are_capped_too(limited: Service) -> None:
    big = b"x" * (LIMIT + 1)
    login = limited.http.post(
        limited.url + "/staff/login",
        content=big,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 413
    api = limited.http.post(
        limited.url + "/api/v1/missed-calls",
        content=chunks(big),
        headers={"Content-Type": "application/json"},
    )
    assert api.status_code == 413


def test_a_staff_file_upload_may_be_larger_but_not_unbounded(limited: Service) -> None:
    def upload(size: int) -> int:
        response = limited.http.post(
            limited.url + "/staff/login",
            data={"email": "a@b.example", "password": "x", "csrf_token": "x"},
            files={"file": ("patients.csv", b"n" * size, "text/csv")},
        )
        return response.status_code

    # Over the form limit but within the upload limit: read whole, and the form's token
    # checked (no sign-in form was shown, so it has expired: 403).
    assert upload(LIMIT * 2) == 403
    assert upload(UPLOAD_LIMIT + 1) == 413
    # Multipart elsewhere is held to the ordinary limit.
    elsewhere = limited.http.post(
        limited.url + "/book/not-a-token/hold", files={"f": ("a", b"n" * (LIMIT * 2), "x/y")}
    )
    assert elsewhere.status_code == 413


def test_the_limits_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = Settings()
    assert defaults.max_body_bytes == 1024 * 1024
    assert defaults.max_upload_bytes == 64 * 1024 * 1024
    monkeypatch.setenv("RINGBACK_MAX_BODY_BYTES", "4096")
    monkeypatch.setenv("RINGBACK_MAX_UPLOAD_BYTES", "100000")
    assert (Settings().max_body_bytes, Settings().max_upload_bytes) == (4096, 100000)
    monkeypatch.setenv("RINGBACK_MAX_BODY_BYTES", "10")
    with pytest.raises(ValueError, match="RINGBACK_MAX_BODY_BYTES"):
        Settings()

"""One way to refuse a request field that only the handler can judge: a 422 shaped
exactly like FastAPI's own validation errors, naming the field and the value."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError


def invalid(
    where: Literal["query", "body", "path"], field: str, value: Any, message: str
) -> RequestValidationError:
    """``raise invalid("query", "location", value, "no location ...")`` answers 422 with
    ``{"detail": [{"loc": [where, field], "msg": "field: message", "input": value}]}``."""
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": (where, field),
                "msg": f"{field}: {message}",
                "input": value,
            }
        ]
    )


def bad_request(
    where: Literal["query", "body", "path"], field: str, value: Any, message: str
) -> HTTPException:
    """The same shape as :func:`invalid`, answered 400: for a value that is well-formed
    for its type but cannot be used, such as a cursor this API did not hand out or a
    moment outside the range the database can compare."""
    return HTTPException(
        400,
        [
            {
                "type": "value_error",
                "loc": [where, field],
                "msg": f"{field}: {message}",
                "input": value,
            }
        ],
    )

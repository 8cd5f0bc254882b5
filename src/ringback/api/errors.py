"""One way to refuse a request field that only the handler can judge: a 422 shaped
exactly like FastAPI's own validation errors, naming the field and the value."""

from __future__ import annotations

from typing import Any, Literal

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

"""An OpenAPI 3.0 description (Square's) turned into an :class:`ApiContract`.

Loaded once per file: Square's description is several megabytes. Square ignores the
read-only fields of a resource we send back to it (``id``, ``status``, ``created_at``), so
the contract refuses them: sending one means we believe we can set it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from ringback.fakes.contract import (
    ApiContract,
    BusinessRule,
    ContractViolation,
    Operation,
    ParameterRule,
    SchemaRule,
    default_spec_dir,
    parse_rfc3339,
    read_json_document,
)

SQUARE_SPEC = "square_api.json"
_METHODS = ("get", "post", "put", "patch", "delete")


def square_contract(path: Path | None = None) -> ApiContract:
    """Square's Connect API from :func:`default_spec_dir` (or ``path``), read once."""
    return _load(path.resolve() if path is not None else default_spec_dir() / SQUARE_SPEC)


@functools.cache
def _load(path: Path) -> ApiContract:
    return contract_from_openapi(read_json_document(path), business_rules=SQUARE_RULES)


def contract_from_openapi(
    document: Mapping[str, Any], *, business_rules: Mapping[str, BusinessRule] | None = None
) -> ApiContract:
    """Build the contract from a parsed OpenAPI 3.0 document."""
    if "paths" not in document:
        raise ValueError("not an OpenAPI document (no 'paths')")
    builder = _Builder(document)
    schemas = {
        name: builder.rule(node)
        for name, node in document.get("components", {}).get("schemas", {}).items()
    }
    operations = [
        builder.operation(method.upper(), template, item, node)
        for template, item in document["paths"].items()
        for method, node in item.items()
        if method in _METHODS
    ]
    title = str(document.get("info", {}).get("title", "the OpenAPI document"))
    return ApiContract(
        title,
        "",
        operations,
        schemas,
        business_rules=business_rules,
        reject_read_only=True,
    )


class _Builder:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document

    def operation(
        self, method: str, template: str, item: Mapping[str, Any], node: Mapping[str, Any]
    ) -> Operation:
        parameters = [
            self._deref(p) for p in [*item.get("parameters", []), *node.get("parameters", [])]
        ]
        path_parameters: dict[str, ParameterRule] = {}
        query_parameters: dict[str, ParameterRule] = {}
        for parameter in parameters:
            location = parameter.get("in")
            name = str(parameter["name"])
            rule = self.rule(parameter.get("schema", {}))
            if location == "path":
                path_parameters[name] = ParameterRule(name, "path", rule, True)
            elif location == "query":
                required = bool(parameter.get("required", False))
                repeated = rule.type == "array"
                query_parameters[name] = ParameterRule(name, "query", rule, required, repeated)
        body: SchemaRule | None = None
        body_required = False
        request_body = node.get("requestBody")
        if request_body is not None:
            request_body = self._deref(request_body)
            schema = request_body.get("content", {}).get("application/json", {}).get("schema")
            if schema is not None:
                body = self.rule(schema)
                body_required = bool(request_body.get("required", False))
        scopes = tuple(
            scope
            for requirement in node.get("security", [])
            for scopes in requirement.values()
            if scopes
            for scope in scopes
        )
        operation_id = str(node.get("operationId", f"{method} {template}"))
        return Operation(
            operation_id,
            method,
            template,
            path_parameters,
            query_parameters,
            body,
            body_required,
            scopes,
        )

    def rule(self, node: Mapping[str, Any]) -> SchemaRule:
        reference = node.get("$ref")
        nullable = bool(node.get("nullable", False))
        read_only = bool(node.get("readOnly", False))
        if reference is not None:
            return SchemaRule(
                ref=str(reference).rsplit("/", 1)[-1], nullable=nullable, read_only=read_only
            )
        enum = node.get("enum")
        properties = {name: self.rule(child) for name, child in node.get("properties", {}).items()}
        additional = node.get("additionalProperties")
        items = node.get("items")
        return SchemaRule(
            type=node.get("type"),
            format=node.get("format"),
            enum=frozenset(str(value) for value in enum) if enum is not None else None,
            properties=properties,
            required=frozenset(node.get("required", [])),
            additional=self.rule(additional) if isinstance(additional, dict) else None,
            items=self.rule(items) if items is not None else None,
            nullable=nullable,
            read_only=read_only,
            min_length=node.get("minLength"),
            max_length=node.get("maxLength"),
            minimum=float(node["minimum"]) if "minimum" in node else None,
            maximum=float(node["maximum"]) if "maximum" in node else None,
        )

    def _deref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        seen: set[str] = set()
        while "$ref" in node:
            reference = str(node["$ref"])
            if not reference.startswith("#/") or reference in seen:
                raise ValueError(f"cannot resolve $ref {reference}")
            seen.add(reference)
            target: Any = self._document
            for part in reference[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node


# --- Square's documented rules beyond the schema -----------------------------------------


def _violation(operation: str, where: str, problem: str) -> ContractViolation:
    return ContractViolation("business_rule", f"{operation}: {where} {problem}", where)


def _timestamp_rule(
    operation: str, where: str, value: Any, *, required: bool
) -> list[ContractViolation]:
    if value is None:
        return [_violation(operation, where, "is required")] if required else []
    if not isinstance(value, str) or parse_rfc3339(value) is None:
        return [_violation(operation, where, f"= {value!r} is not an RFC 3339 timestamp")]
    return []


def _create_booking_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    """CreateBooking's description lists the fields "the required input must include"."""
    label = "CreateBooking"
    booking = body.get("booking", {}) if isinstance(body, dict) else {}
    violations = _timestamp_rule(label, "booking.start_at", booking.get("start_at"), required=True)
    if not booking.get("location_id"):
        violations.append(_violation(label, "booking.location_id", "is required"))
    segments = booking.get("appointment_segments") or []
    if not segments:
        violations.append(_violation(label, "booking.appointment_segments", "is required"))
    for index, segment in enumerate(segments):
        for name in ("service_variation_id", "service_variation_version"):
            if isinstance(segment, dict) and segment.get(name) in (None, ""):
                where = f"booking.appointment_segments[{index}].{name}"
                violations.append(_violation(label, where, "is required"))
    if not body.get("idempotency_key"):
        # Optional in the schema; without it a retried create books twice.
        violations.append(_violation(label, "idempotency_key", "is missing; retries double-book"))
    return violations


def _update_booking_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    booking = body.get("booking", {}) if isinstance(body, dict) else {}
    return _timestamp_rule(
        "UpdateBooking", "booking.start_at", booking.get("start_at"), required=False
    )


def _search_availability_rules(
    query: Mapping[str, list[str]], body: Any
) -> list[ContractViolation]:
    """``start_at_range`` must be "at least 24 hours and at most 32 days long"."""
    label = "SearchAvailability"
    time_range = body.get("query", {}).get("filter", {}).get("start_at_range", {})
    where = "query.filter.start_at_range"
    violations = _timestamp_rule(
        label, f"{where}.start_at", time_range.get("start_at"), required=True
    )
    violations += _timestamp_rule(label, f"{where}.end_at", time_range.get("end_at"), required=True)
    if violations:
        return violations
    start = parse_rfc3339(time_range["start_at"])
    end = parse_rfc3339(time_range["end_at"])
    assert start is not None
    assert end is not None
    if not timedelta(hours=24) <= end - start <= timedelta(days=32):
        violations.append(_violation(label, where, "must be at least 24 hours and at most 32 days"))
    if not body.get("query", {}).get("filter", {}).get("location_id"):
        violations.append(_violation(label, "query.filter.location_id", "is required"))
    return violations


def _list_bookings_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    violations: list[ContractViolation] = []
    for name in ("start_at_min", "start_at_max"):
        for value in query.get(name, []):
            violations += _timestamp_rule("ListBookings", name, value, required=False)
    if not violations and "start_at_min" in query and "start_at_max" in query:
        low = parse_rfc3339(query["start_at_min"][0])
        high = parse_rfc3339(query["start_at_max"][0])
        assert low is not None
        assert high is not None
        if high - low > timedelta(days=31):
            violations.append(
                _violation(
                    "ListBookings", "start_at_max", "is more than 31 days after start_at_min"
                )
            )
    return violations


SQUARE_RULES: Mapping[str, BusinessRule] = {
    "CreateBooking": _create_booking_rules,
    "UpdateBooking": _update_booking_rules,
    "SearchAvailability": _search_availability_rules,
    "ListBookings": _list_bookings_rules,
}

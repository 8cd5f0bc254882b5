"""Typed request rules built from a vendor's published API description, and the checker.

Two vendors, two description formats: Square publishes OpenAPI 3.0
(:mod:`ringback.fakes.openapi`) and Google a discovery document
(:mod:`ringback.fakes.discovery`). Both are turned, once per file, into the same typed
rules here: path templates with their operations, each operation's path and query
parameters and its JSON body schema. Named schemas stay named (``SchemaRule.ref``) and
are looked up when a value is checked, so self-referencing schemas cost nothing to build.

A request is checked for: a path the API has, a method that path allows, path and query
parameters (unknown ones, types, enum values, required ones), and the JSON body (required
fields, types, formats, enum values, lengths and ranges, unknown and read-only fields).
Every difference is a :class:`ContractViolation` with a readable sentence. Credentials are
the fake's business (it knows the tokens); :func:`bearer_token` reads the header.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

ViolationKind = Literal[
    "auth",
    "unknown_path",
    "method_not_allowed",
    "path_parameter",
    "query_parameter",
    "header",
    "body",
    "business_rule",
]

_HTTP_STATUS_BY_KIND: Mapping[ViolationKind, int] = {
    "auth": 401,
    "unknown_path": 404,
    "method_not_allowed": 405,
}

SPEC_DIR_ENV = "RINGBACK_BOOKING_SYSTEMS_SPEC_DIR"

_PATH_PARAMETER = re.compile(r"\{\+?([^{}/]+)\}")
_INTEGER = re.compile(r"^-?[0-9]+$")
# RFC 3339: a date, a time, and an offset (``Z`` or ``+hh:mm``); fractions allowed.
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class SpecNotFoundError(FileNotFoundError):
    """The booking systems' API descriptions are not where this checkout expects them."""


def default_spec_dir() -> Path:
    """Where the API descriptions live: ``$RINGBACK_BOOKING_SYSTEMS_SPEC_DIR``, else
    ``<repo>/../shared/booking-systems`` (the layout in development and in CI)."""
    override = os.environ.get(SPEC_DIR_ENV)
    if override:
        directory = Path(override)
        if not directory.is_dir():
            raise SpecNotFoundError(f"{SPEC_DIR_ENV}={override} is not a directory")
        return directory
    repo_root = Path(__file__).resolve().parents[3]
    directory = repo_root.parent / "shared" / "booking-systems"
    if not directory.is_dir():
        raise SpecNotFoundError(
            f"the booking systems' API descriptions are expected in {directory}; "
            f"set {SPEC_DIR_ENV} to the folder holding square_api.json"
        )
    return directory


def read_json_document(path: Path) -> dict[str, Any]:
    """Parse a JSON description file; refuse anything that is not a JSON object."""
    with path.open("rb") as spec_file:
        document = json.load(spec_file)
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a JSON object")
    return document


@dataclass(frozen=True, slots=True)
class ContractViolation:
    """One way a request breaks the vendor's contract."""

    kind: ViolationKind
    message: str
    field: str | None = None

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS_BY_KIND.get(self.kind, 400)


@dataclass(frozen=True, slots=True)
class SchemaRule:
    """What the description allows for one JSON value (a named schema is a ``ref``)."""

    type: str | None = None
    ref: str | None = None
    format: str | None = None
    enum: frozenset[str] | None = None
    properties: Mapping[str, SchemaRule] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    # Google marks a property required per method: property name -> method ids.
    required_for: Mapping[str, frozenset[str]] = field(default_factory=dict)
    additional: SchemaRule | None = None
    items: SchemaRule | None = None
    nullable: bool = False
    read_only: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class ParameterRule:
    """A path or query parameter of one operation."""

    name: str
    location: Literal["path", "query"]
    rule: SchemaRule
    required: bool = False
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path template, with everything a request to it must satisfy."""

    operation_id: str
    method: str
    template: str
    path_parameters: Mapping[str, ParameterRule]
    query_parameters: Mapping[str, ParameterRule]
    body: SchemaRule | None
    body_required: bool
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _PathTemplate:
    template: str
    regex: re.Pattern[str]
    literal_characters: int
    operations: Mapping[str, Operation]


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    """What the checker found: the operation (if the path and method matched), the
    decoded path parameters, the parsed JSON body, and every violation."""

    operation: Operation | None
    path_values: Mapping[str, str]
    body: Any
    violations: list[ContractViolation]


# A documented rule the schema cannot express: (query, body) -> violations.
BusinessRule = Callable[[Mapping[str, list[str]], Any], list[ContractViolation]]


class ApiContract:
    """The requests one API description allows; immutable, shared by every fake and thread."""

    def __init__(
        self,
        title: str,
        base_path: str,
        operations: Iterable[Operation],
        schemas: Mapping[str, SchemaRule],
        *,
        business_rules: Mapping[str, BusinessRule] | None = None,
        reject_read_only: bool = False,
    ) -> None:
        self.title = title
        self.base_path = base_path.rstrip("/")
        self.schemas = schemas
        self._business_rules = dict(business_rules or {})
        self.reject_read_only = reject_read_only
        by_template: dict[str, dict[str, Operation]] = {}
        for operation in operations:
            by_template.setdefault(operation.template, {})[operation.method] = operation
        templates = [_compile(template, ops) for template, ops in by_template.items()]
        # Most literal characters first: ``/v2/bookings/availability/search`` must win over
        # ``/v2/bookings/{booking_id}``.
        self._templates = tuple(sorted(templates, key=lambda t: -t.literal_characters))

    @property
    def operations(self) -> list[Operation]:
        return [op for template in self._templates for op in template.operations.values()]

    def operation(self, operation_id: str) -> Operation:
        for operation in self.operations:
            if operation.operation_id == operation_id:
                return operation
        raise KeyError(operation_id)

    def check(
        self,
        method: str,
        raw_path: str,
        query: Mapping[str, list[str]],
        content_type: str | None,
        body: bytes,
    ) -> CheckedRequest:
        """Check one request; ``raw_path`` is percent-encoded, as it came over the wire."""
        method = method.upper()
        if not raw_path.startswith(self.base_path + "/"):
            message = f"{method} {raw_path}: {self.title} serves paths under {self.base_path}/"
            return CheckedRequest(None, {}, None, [ContractViolation("unknown_path", message)])
        relative = raw_path[len(self.base_path) :]
        matched = self._match(relative)
        if matched is None:
            message = f"{method} {raw_path}: no path in {self.title} matches"
            return CheckedRequest(None, {}, None, [ContractViolation("unknown_path", message)])
        template, raw_values = matched
        path_values = {name: unquote(value) for name, value in raw_values.items()}
        operation = template.operations.get(method)
        if operation is None:
            allowed = ", ".join(sorted(template.operations))
            message = (
                f"{method} {self.base_path}{template.template}: the spec allows only {allowed}"
            )
            return CheckedRequest(
                None, path_values, None, [ContractViolation("method_not_allowed", message)]
            )
        violations: list[ContractViolation] = []
        label = operation.operation_id
        for name, value in path_values.items():
            parameter = operation.path_parameters.get(name)
            problem = _wire_problem(parameter.rule, value) if parameter else None
            if not value:
                problem = "is empty"
            if problem is not None:
                message = f"{label}: path parameter {name!r} = {_show(value)} {problem}"
                violations.append(ContractViolation("path_parameter", message, name))
        violations += _query_violations(operation, query)
        parsed, body_violations = self._body_violations(operation, content_type, body)
        violations += body_violations
        rule = self._business_rules.get(label)
        if rule is not None and not body_violations:
            violations += rule(query, parsed)
        return CheckedRequest(operation, path_values, parsed, violations)

    def check_value(
        self, rule: SchemaRule, value: Any, where: str, operation_id: str
    ) -> list[ContractViolation]:
        """Check a JSON value against ``rule`` (used for bodies, and by tests on answers)."""
        out: list[ContractViolation] = []
        _ValueChecker(self, operation_id, out).check(rule, value, where)
        return out

    def _body_violations(
        self, operation: Operation, content_type: str | None, body: bytes
    ) -> tuple[Any, list[ContractViolation]]:
        label = operation.operation_id
        if operation.body is None:
            if body.strip():
                return None, [ContractViolation("body", f"{label}: takes no body, but got one")]
            return None, []
        if not body.strip():
            if operation.body_required:
                return None, [ContractViolation("body", f"{label}: the JSON body is missing")]
            return None, []
        if content_type is None or not content_type.lower().startswith("application/json"):
            message = f"{label}: body sent as {content_type or 'no content type'}, not JSON"
            return None, [ContractViolation("header", message, "Content-Type")]
        try:
            parsed = json.loads(body)
        except ValueError:
            return None, [ContractViolation("body", f"{label}: the body is not valid JSON")]
        return parsed, self.check_value(operation.body, parsed, "body", label)

    def _match(self, path: str) -> tuple[_PathTemplate, dict[str, str]] | None:
        for template in self._templates:
            found = template.regex.match(path)
            if found is not None:
                return template, found.groupdict()
        return None


@dataclass(slots=True)
class _ValueChecker:
    contract: ApiContract
    operation_id: str
    out: list[ContractViolation]

    def report(self, where: str, problem: str) -> None:
        message = f"{self.operation_id}: {where} {problem}"
        self.out.append(ContractViolation("body", message, where.removeprefix("body.")))

    def check(self, rule: SchemaRule, value: Any, where: str) -> None:
        while rule.ref is not None:
            target = self.contract.schemas.get(rule.ref)
            if target is None:
                return
            rule = target
        if value is None:
            if not rule.nullable:
                self.report(where, "is null, which the spec does not allow")
            return
        type_problem = _json_type_problem(rule.type, value)
        if type_problem is not None:
            self.report(where, f"= {_show_json(value)} {type_problem}")
            return
        if isinstance(value, str):
            self._check_string(rule, value, where)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._check_number(rule, value, where)
        elif isinstance(value, list):
            if rule.items is not None:
                for index, item in enumerate(value):
                    self.check(rule.items, item, f"{where}[{index}]")
        elif isinstance(value, dict):
            self._check_object(rule, value, where)

    def _check_string(self, rule: SchemaRule, value: str, where: str) -> None:
        if rule.enum is not None and value not in rule.enum:
            allowed = ", ".join(sorted(rule.enum))
            self.report(where, f"= {_show(value)} is not one of {allowed}")
            return
        if rule.min_length is not None and len(value) < rule.min_length:
            self.report(where, f"is {len(value)} characters, shorter than {rule.min_length}")
        if rule.max_length is not None and len(value) > rule.max_length:
            self.report(where, f"is {len(value)} characters, longer than {rule.max_length}")
        problem = _format_problem(rule.format, value)
        if problem is not None:
            self.report(where, f"= {_show(value)} {problem}")

    def _check_number(self, rule: SchemaRule, value: float, where: str) -> None:
        if rule.minimum is not None and value < rule.minimum:
            self.report(where, f"= {value} is below the minimum {_plain(rule.minimum)}")
        if rule.maximum is not None and value > rule.maximum:
            self.report(where, f"= {value} is above the maximum {_plain(rule.maximum)}")

    def _check_object(self, rule: SchemaRule, value: Mapping[str, Any], where: str) -> None:
        if rule.type != "object" and not rule.properties and rule.additional is None:
            return
        for name, item in value.items():
            child = f"{where}.{name}"
            prop = rule.properties.get(name)
            if prop is None:
                if rule.additional is not None:
                    self.check(rule.additional, item, child)
                elif rule.properties:
                    self.report(child, "is not a field the spec defines; it would be ignored")
                continue
            if self.contract.reject_read_only and prop.read_only:
                self.report(child, "is read-only; the server sets it and ignores ours")
                continue
            self.check(prop, item, child)
        required = set(rule.required)
        required |= {name for name, ops in rule.required_for.items() if self.operation_id in ops}
        for name in sorted(required - set(value)):
            self.report(f"{where}.{name}", "is required but missing")


def _compile(template: str, operations: Mapping[str, Operation]) -> _PathTemplate:
    regex_source = ""
    position = 0
    for parameter in _PATH_PARAMETER.finditer(template):
        regex_source += re.escape(template[position : parameter.start()])
        regex_source += f"(?P<{parameter.group(1)}>[^/]+)"
        position = parameter.end()
    regex_source += re.escape(template[position:])
    literal_characters = len(_PATH_PARAMETER.sub("", template))
    return _PathTemplate(
        template, re.compile(f"^{regex_source}$"), literal_characters, dict(operations)
    )


def _query_violations(
    operation: Operation, query: Mapping[str, list[str]]
) -> list[ContractViolation]:
    label = operation.operation_id
    violations: list[ContractViolation] = []
    for name, values in query.items():
        parameter = operation.query_parameters.get(name)
        if parameter is None:
            known = ", ".join(sorted(operation.query_parameters)) or "none"
            message = f"{label}: unknown query parameter {name!r} (the spec defines: {known})"
            violations.append(ContractViolation("query_parameter", message, name))
            continue
        if len(values) > 1 and not parameter.repeated:
            message = f"{label}: query parameter {name!r} sent {len(values)} times; it takes one"
            violations.append(ContractViolation("query_parameter", message, name))
        for value in values:
            problem = _wire_problem(parameter.rule, value)
            if problem is not None:
                message = f"{label}: query parameter {name!r} = {_show(value)} {problem}"
                violations.append(ContractViolation("query_parameter", message, name))
    for name, parameter in sorted(operation.query_parameters.items()):
        if parameter.required and name not in query:
            message = f"{label}: required query parameter {name!r} is missing"
            violations.append(ContractViolation("query_parameter", message, name))
    return violations


def _wire_problem(rule: SchemaRule, value: str) -> str | None:
    """Why a path or query value (a string on the wire) breaks ``rule``."""
    if rule.type == "array" and rule.items is not None:
        return _wire_problem(rule.items, value)
    if rule.type == "integer" and not _INTEGER.match(value):
        return "is not an integer"
    if rule.type == "number":
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if not math.isfinite(number):
            return "is not a finite number"
    if rule.type == "boolean" and value not in ("true", "false"):
        return "is not a boolean ('true' or 'false')"
    if rule.enum is not None and value not in rule.enum:
        return f"is not one of {', '.join(sorted(rule.enum))}"
    if rule.type in ("integer", "number"):
        number = float(value)
        if rule.minimum is not None and number < rule.minimum:
            return f"is below the minimum {_plain(rule.minimum)}"
        if rule.maximum is not None and number > rule.maximum:
            return f"is above the maximum {_plain(rule.maximum)}"
    if rule.max_length is not None and len(value) > rule.max_length:
        return f"is {len(value)} characters, longer than {rule.max_length}"
    return _format_problem(rule.format, value)


def _json_type_problem(type_name: str | None, value: Any) -> str | None:
    if type_name is None:
        return None
    if type_name == "string" and not isinstance(value, str):
        return "is not a string"
    if type_name == "integer" and (
        isinstance(value, bool)
        or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
    ):
        return "is not an integer"
    if type_name == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return "is not a number"
    if type_name == "boolean" and not isinstance(value, bool):
        return "is not a boolean"
    if type_name == "object" and not isinstance(value, dict):
        return "is not an object"
    if type_name == "array" and not isinstance(value, list):
        return "is not an array"
    return None


def _format_problem(format_name: str | None, value: str) -> str | None:
    if format_name == "date-time":
        return None if parse_rfc3339(value) is not None else "is not an RFC 3339 date-time"
    if format_name == "date":
        if not _ISO_DATE.match(value):
            return "is not a date like 2026-05-31"
        try:
            date.fromisoformat(value)
        except ValueError:
            return "is not a real calendar date"
    if format_name in ("int64", "uint64") and not _INTEGER.match(value):
        return "is not an integer in a string (int64)"
    return None


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 date-time with its offset, or ``None``: no offset is not RFC 3339."""
    if not _RFC3339.match(value):
        return None
    text = value.upper()
    text = text[:-1] + "+00:00" if text.endswith("Z") else text
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def bearer_token(authorization: str | None) -> tuple[str | None, str | None]:
    """``(token, None)`` from an ``Authorization: Bearer`` header, else ``(None, why)``."""
    if not authorization:
        return None, "no Authorization header; a Bearer token is required"
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None, f"Authorization scheme is {_show(scheme)}, not Bearer"
    token = token.strip()
    if not token:
        return None, "Authorization has the Bearer scheme but no token"
    return token, None


def _show(value: str, limit: int = 60) -> str:
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    return repr(value)


def _show_json(value: Any) -> str:
    return _show(json.dumps(value))


def _plain(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)

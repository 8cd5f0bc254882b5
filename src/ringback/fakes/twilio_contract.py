"""Twilio's published OpenAPI contract, used to check the requests we send to Twilio.

Twilio forgives a great deal: an unknown form field is dropped with warning 20001, so a
misspelt ``StatusCallback`` silently means that no delivery receipt ever arrives. The
fakes in this package therefore hold our requests to the letter of Twilio's own OpenAPI
descriptions (``../shared/twilio-openapi/``) plus the documented rules that a JSON schema
cannot express, and report every difference as a readable violation.

The spec's loose JSON is turned into typed rules once, when a file is loaded; loading is
cached per file, because the API v2010 description alone is 1.8 MB.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

OPENAPI_DIR_ENV = "RINGBACK_TWILIO_OPENAPI_DIR"
API_V2010_SPEC = "twilio_api_v2010.json"
LOOKUPS_V2_SPEC = "twilio_lookups_v2.json"

# Twilio's documented limit for a message body (error 21617).
MAX_MESSAGE_BODY_CHARACTERS = 1600
# Twilio's documented limit for a callback URL (error 21609).
MAX_CALLBACK_URL_CHARACTERS = 4000

ViolationKind = Literal[
    "auth",
    "unknown_path",
    "method_not_allowed",
    "path_parameter",
    "query_parameter",
    "body",
    "business_rule",
]

_HTTP_STATUS_BY_KIND: Mapping[ViolationKind, int] = {
    "auth": 401,
    "unknown_path": 404,
    "method_not_allowed": 405,
}

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"

# At least 7 digits: the shortest numbers in use (Niue, Saint Helena) have 7.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Channel addresses Twilio documents for the Messages API, e.g. ``whatsapp:+15552229999``.
_CHANNEL_ADDRESS = re.compile(r"^(?:whatsapp|rcs):\+[1-9][0-9]{6,14}$|^messenger:[0-9A-Za-z]+$")
# What the Calls API accepts as an ``endpoint``: a number, a Client identity, a SIP URI.
_VOICE_ENDPOINT = re.compile(r"^(?:client|app):[^\s]+$|^sip:[^\s@]+@[^\s]+$")
_INTEGER = re.compile(r"^-?[0-9]+$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_COUNTRY_CODE = re.compile(r"^[A-Z]{2}$")
# A US-style date Twilio shows in its own list-filter examples: ``06/11/2019 22:05:25 MST``.
_SLASHED_DATE_TIME = re.compile(r"^[0-9]{2}/[0-9]{2}/[0-9]{4}( [0-9]{2}:[0-9]{2}(:[0-9]{2})?)?")
_PATH_PARAMETER = re.compile(r"\{([^{}/]+)\}")


class TwilioSpecNotFoundError(FileNotFoundError):
    """Twilio's OpenAPI files are not where this checkout expects them."""


@dataclass(frozen=True, slots=True)
class ContractViolation:
    """One way a request breaks Twilio's contract, and the error Twilio would answer with."""

    kind: ViolationKind
    message: str
    field: str | None = None
    twilio_code: int | None = None

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS_BY_KIND.get(self.kind, 400)


@dataclass(frozen=True, slots=True)
class ValueRule:
    """What the spec allows for one parameter or form field (``$ref`` already resolved)."""

    type: str | None = None
    format: str | None = None
    enum: tuple[str, ...] | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    items: ValueRule | None = None
    # ``x-twilio: {ignoreFormat: true}`` (only on ``MediaUrl`` items): Twilio itself says
    # the format is not to be enforced there.
    ignore_format: bool = False

    @property
    def is_array(self) -> bool:
        return self.type == "array"

    def problem_with(self, value: str) -> str | None:
        """Why ``value`` (as sent on the wire) breaks this rule, or ``None`` if it fits."""
        if self.is_array:
            return self.items.problem_with(value) if self.items is not None else None
        type_problem = _type_problem(self.type, value)
        if type_problem is not None:
            return type_problem
        if self.enum is not None and value not in self.enum:
            return f"is not one of {', '.join(self.enum)}"
        if self.min_length is not None and len(value) < self.min_length:
            return f"is {len(value)} characters, shorter than the minimum {self.min_length}"
        if self.max_length is not None and len(value) > self.max_length:
            return f"is {len(value)} characters, longer than the maximum {self.max_length}"
        if self.pattern is not None and self.pattern.search(value) is None:
            return f"does not match {self.pattern.pattern}"
        if self.type in ("integer", "number"):
            number = float(value)
            if self.minimum is not None and number < self.minimum:
                return f"is below the minimum {_plain_number(self.minimum)}"
            if self.maximum is not None and number > self.maximum:
                return f"is above the maximum {_plain_number(self.maximum)}"
        if self.format is not None and not self.ignore_format:
            return _format_problem(self.format, value)
        return None


@dataclass(frozen=True, slots=True)
class _Operation:
    method: str
    template: str
    operation_id: str
    path_rules: Mapping[str, ValueRule]
    query_rules: Mapping[str, ValueRule]
    required_query: frozenset[str]
    body_media_types: tuple[str, ...]
    form_rules: Mapping[str, ValueRule]
    required_form: frozenset[str]
    needs_basic_auth: bool

    @property
    def takes_form(self) -> bool:
        return FORM_MEDIA_TYPE in self.body_media_types


@dataclass(frozen=True, slots=True)
class _PathTemplate:
    template: str
    regex: re.Pattern[str]
    literal_characters: int
    operations: Mapping[str, _Operation]


# A documented rule the schema cannot express, applied to the whole request.
_BusinessRule = Callable[["_RequestParts"], list[ContractViolation]]


@dataclass(frozen=True, slots=True)
class _RequestParts:
    form: Mapping[str, list[str]]
    query: Mapping[str, str]
    path_values: Mapping[str, str]


class TwilioContract:
    """The requests one Twilio OpenAPI description allows, checkable one request at a time.

    Immutable once loaded, so a single instance is shared by every fake server and thread.
    """

    def __init__(self, title: str, templates: Iterable[_PathTemplate]) -> None:
        self.title = title
        # Most literal characters first: ``IncomingPhoneNumbers/Local.json`` must win over
        # ``IncomingPhoneNumbers/{Sid}.json``.
        self._templates = tuple(sorted(templates, key=lambda t: -t.literal_characters))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TwilioContract:
        """Parse the OpenAPI JSON at ``path``; each file is read once per process."""
        return _load_cached(Path(path).resolve())

    @classmethod
    def api_v2010(cls) -> TwilioContract:
        """Twilio's core API (Messages, Calls, ...) from :func:`default_openapi_dir`."""
        return cls.load(default_openapi_dir() / API_V2010_SPEC)

    @classmethod
    def lookups_v2(cls) -> TwilioContract:
        """Twilio Lookup v2 from :func:`default_openapi_dir`."""
        return cls.load(default_openapi_dir() / LOOKUPS_V2_SPEC)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> TwilioContract:
        """Build the contract from an already parsed OpenAPI document."""
        return _ContractBuilder(document).build()

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(t.template for t in self._templates)

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        form: Mapping[str, list[str]] | None,
        authorization: str | None,
        expected_account_sid: str,
        expected_auth_token: str,
        *,
        path_rules: Mapping[str, ValueRule] | None = None,
    ) -> list[str]:
        """Every way this request breaks the contract, as sentences; empty if it is valid.

        ``path`` is the percent-decoded path, ``form`` the decoded
        ``application/x-www-form-urlencoded`` body (``None`` when there is none) and
        ``authorization`` the raw ``Authorization`` header. ``path_rules`` replaces the
        spec's rule for the named path parameters: a provider that mirrors this API with
        ids of its own shape (SignalWire's UUIDs) is held to everything else.
        """
        violations = self.check_request(
            method,
            path,
            query,
            form,
            authorization,
            expected_account_sid,
            expected_auth_token,
            path_rules=path_rules,
        )
        return [violation.message for violation in violations]

    def check_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        form: Mapping[str, list[str]] | None,
        authorization: str | None,
        expected_account_sid: str,
        expected_auth_token: str,
        *,
        path_rules: Mapping[str, ValueRule] | None = None,
    ) -> list[ContractViolation]:
        """Like :meth:`check`, keeping the kind, field and Twilio error code of each."""
        method = method.upper()
        matched = self._match(path)
        if matched is None:
            return [
                ContractViolation(
                    "unknown_path",
                    f"{method} {path}: no path in {self.title} matches",
                    twilio_code=20404,
                )
            ]
        template, path_values = matched
        operation = template.operations.get(method)
        if operation is None:
            allowed = ", ".join(sorted(template.operations)) or "nothing"
            return [
                ContractViolation(
                    "method_not_allowed",
                    f"{method} {template.template}: the spec allows only {allowed}",
                    twilio_code=20004,
                )
            ]
        label = operation.operation_id
        violations: list[ContractViolation] = []
        if operation.needs_basic_auth:
            violations += _auth_violations(
                label, authorization, expected_account_sid, expected_auth_token
            )
            claimed_account = path_values.get("AccountSid")
            if claimed_account is not None and claimed_account != expected_account_sid:
                violations.append(
                    ContractViolation(
                        "auth",
                        f"{label}: path parameter 'AccountSid' = {_show(claimed_account)} "
                        "is not the account whose credentials were sent",
                        field="AccountSid",
                        twilio_code=20003,
                    )
                )
        violations += _path_violations(operation, path_values, path_rules or {})
        violations += _query_violations(operation, query)
        violations += _body_violations(operation, form)
        rule = _BUSINESS_RULES.get(operation.operation_id)
        if rule is not None:
            violations += rule(_RequestParts(form or {}, query, path_values))
        return violations

    def _match(self, path: str) -> tuple[_PathTemplate, dict[str, str]] | None:
        for template in self._templates:
            found = template.regex.match(path)
            if found is not None:
                return template, found.groupdict()
        return None


def default_openapi_dir() -> Path:
    """Where Twilio's OpenAPI files live: ``$RINGBACK_TWILIO_OPENAPI_DIR``, else
    ``<repo>/../shared/twilio-openapi`` (the layout in development and in CI)."""
    override = os.environ.get(OPENAPI_DIR_ENV)
    if override:
        directory = Path(override)
        if not directory.is_dir():
            raise TwilioSpecNotFoundError(f"{OPENAPI_DIR_ENV}={override} is not a directory")
        return directory
    repo_root = Path(__file__).resolve().parents[3]
    directory = repo_root.parent / "shared" / "twilio-openapi"
    if not directory.is_dir():
        raise TwilioSpecNotFoundError(
            f"Twilio's OpenAPI files are expected in {directory}; "
            f"set {OPENAPI_DIR_ENV} to the folder holding {API_V2010_SPEC}"
        )
    return directory


@functools.cache
def _load_cached(path: Path) -> TwilioContract:
    with path.open("rb") as spec_file:
        document = json.load(spec_file)
    if not isinstance(document, dict) or "paths" not in document:
        raise ValueError(f"{path} is not an OpenAPI document (no 'paths')")
    return TwilioContract.from_document(document)


class _ContractBuilder:
    """Turns an OpenAPI document into typed path templates, resolving ``$ref``."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._document = document
        self._default_security = document.get("security", [])

    def build(self) -> TwilioContract:
        title = str(self._document.get("info", {}).get("title", "the OpenAPI document"))
        templates = [
            self._template(template, item) for template, item in self._document["paths"].items()
        ]
        return TwilioContract(title, templates)

    def _template(self, template: str, item: Mapping[str, Any]) -> _PathTemplate:
        regex_source = ""
        position = 0
        for parameter in _PATH_PARAMETER.finditer(template):
            regex_source += re.escape(template[position : parameter.start()])
            regex_source += f"(?P<{parameter.group(1)}>[^/]+)"
            position = parameter.end()
        regex_source += re.escape(template[position:])
        literal_characters = len(_PATH_PARAMETER.sub("", template))
        operations = {
            method.upper(): self._operation(method.upper(), template, item, operation)
            for method, operation in item.items()
            if method in ("get", "post", "put", "patch", "delete")
        }
        return _PathTemplate(
            template, re.compile(f"^{regex_source}$"), literal_characters, operations
        )

    def _operation(
        self,
        method: str,
        template: str,
        item: Mapping[str, Any],
        operation: Mapping[str, Any],
    ) -> _Operation:
        parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
        path_rules: dict[str, ValueRule] = {}
        query_rules: dict[str, ValueRule] = {}
        required_query: set[str] = set()
        for parameter in parameters:
            parameter = self._resolve(parameter)
            rule = self._rule(parameter.get("schema", {}))
            if parameter["in"] == "path":
                path_rules[parameter["name"]] = rule
            elif parameter["in"] == "query":
                query_rules[parameter["name"]] = rule
                if parameter.get("required"):
                    required_query.add(parameter["name"])
        content: Mapping[str, Any] = operation.get("requestBody", {}).get("content", {})
        form_rules: dict[str, ValueRule] = {}
        required_form: frozenset[str] = frozenset()
        if FORM_MEDIA_TYPE in content:
            schema = self._resolve(content[FORM_MEDIA_TYPE].get("schema", {}))
            form_rules = {
                name: self._rule(property_schema)
                for name, property_schema in schema.get("properties", {}).items()
            }
            required_form = frozenset(schema.get("required", []))
        security = operation.get("security", self._default_security)
        return _Operation(
            method=method,
            template=template,
            operation_id=str(operation.get("operationId", f"{method} {template}")),
            path_rules=path_rules,
            query_rules=query_rules,
            required_query=frozenset(required_query),
            body_media_types=tuple(content),
            form_rules=form_rules,
            required_form=required_form,
            needs_basic_auth=any("accountSid_authToken" in scheme for scheme in security),
        )

    def _rule(self, schema: Mapping[str, Any]) -> ValueRule:
        schema = self._resolve(schema)
        pattern = schema.get("pattern")
        enum = schema.get("enum")
        items = schema.get("items")
        minimum = schema.get("minimum")
        maximum = schema.get("maximum")
        return ValueRule(
            type=schema.get("type"),
            format=schema.get("format"),
            enum=tuple(str(value) for value in enum) if enum is not None else None,
            min_length=schema.get("minLength"),
            max_length=schema.get("maxLength"),
            pattern=re.compile(pattern) if pattern is not None else None,
            minimum=float(minimum) if minimum is not None else None,
            maximum=float(maximum) if maximum is not None else None,
            items=self._rule(items) if items is not None else None,
            ignore_format=bool(schema.get("x-twilio", {}).get("ignoreFormat", False)),
        )

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
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


def basic_auth_problem(authorization: str | None, account_sid: str, auth_token: str) -> str | None:
    """Why an ``Authorization`` header is not HTTP basic auth with these credentials, if so."""
    if not authorization:
        return "no Authorization header; Twilio requires HTTP basic auth"
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return f"Authorization scheme is {_show(scheme)}, not Basic"
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "Authorization is not valid base64 of 'AccountSid:AuthToken'"
    username, separator, password = decoded.partition(":")
    if not separator:
        return "Authorization credentials have no ':' between user and password"
    if username != account_sid:
        return f"Authorization user {_show(username)} is not the expected Account SID"
    if password != auth_token:
        # Never echo the token itself: violations end up in logs and test output.
        return "Authorization password is not the account's auth token"
    return None


def _auth_violations(
    label: str, authorization: str | None, account_sid: str, auth_token: str
) -> list[ContractViolation]:
    problem = basic_auth_problem(authorization, account_sid, auth_token)
    if problem is None:
        return []
    return [ContractViolation("auth", f"{label}: {problem}", "Authorization", twilio_code=20003)]


def _path_violations(
    operation: _Operation, path_values: Mapping[str, str], overrides: Mapping[str, ValueRule]
) -> list[ContractViolation]:
    violations: list[ContractViolation] = []
    for name, value in path_values.items():
        rule = overrides.get(name, operation.path_rules.get(name))
        problem = rule.problem_with(value) if rule is not None else None
        if problem is not None:
            violations.append(
                ContractViolation(
                    "path_parameter",
                    f"{operation.operation_id}: path parameter {name!r} = {_show(value)} {problem}",
                    field=name,
                    twilio_code=20404,
                )
            )
    return violations


def _query_violations(operation: _Operation, query: Mapping[str, str]) -> list[ContractViolation]:
    label = operation.operation_id
    violations: list[ContractViolation] = []
    for name, value in query.items():
        rule = operation.query_rules.get(name)
        if rule is None:
            known = ", ".join(sorted(operation.query_rules)) or "none"
            message = f"{label}: unknown query parameter {name!r} (the spec defines: {known})"
            violations.append(ContractViolation("query_parameter", message, name, 20001))
            continue
        problem = rule.problem_with(value)
        if problem is not None:
            message = f"{label}: query parameter {name!r} = {_show(value)} {problem}"
            violations.append(ContractViolation("query_parameter", message, name))
    for name in sorted(operation.required_query - set(query)):
        message = f"{label}: required query parameter {name!r} is missing"
        violations.append(ContractViolation("query_parameter", message, name))
    return violations


def _body_violations(
    operation: _Operation, form: Mapping[str, list[str]] | None
) -> list[ContractViolation]:
    label = operation.operation_id
    if not operation.takes_form:
        if form:
            expected = ", ".join(operation.body_media_types) or "no body"
            message = f"{label}: sent a form body, but the spec expects {expected}"
            return [ContractViolation("body", message)]
        return []
    form = form or {}
    violations: list[ContractViolation] = []
    for name, values in form.items():
        rule = operation.form_rules.get(name)
        if rule is None:
            message = f"{label}: unknown form field {name!r}; Twilio would silently ignore it"
            violations.append(ContractViolation("body", message, name, 20001))
            continue
        if len(values) > 1 and not rule.is_array:
            message = f"{label}: form field {name!r} sent {len(values)} times; it takes one value"
            violations.append(ContractViolation("body", message, name, _field_code(name)))
        for value in values:
            problem = rule.problem_with(value)
            if problem is not None:
                message = f"{label}: form field {name!r} = {_show(value)} {problem}"
                violations.append(ContractViolation("body", message, name, _field_code(name)))
    for name in sorted(operation.required_form - set(form)):
        message = f"{label}: required form field {name!r} is missing"
        violations.append(ContractViolation("body", message, name, _missing_field_code(name)))
    return violations


def _messages_create_rules(request: _RequestParts) -> list[ContractViolation]:
    """Twilio's documented rules for ``POST .../Messages.json`` beyond the schema."""
    form = request.form

    def present(name: str) -> bool:
        return any(value != "" for value in form.get(name, []))

    def violation(message: str, field: str, code: int) -> ContractViolation:
        return ContractViolation("business_rule", f"CreateMessage: {message}", field, code)

    violations: list[ContractViolation] = []
    # The schema marks ``To`` required already; an empty value is just as missing.
    if "To" in form and not present("To"):
        violations.append(violation("'To' is empty; a recipient is required", "To", 21604))
    if not present("From") and not present("MessagingServiceSid"):
        violations.append(
            violation("one of 'From' or 'MessagingServiceSid' is required", "From", 21603)
        )
    if not present("Body") and not present("MediaUrl") and not present("ContentSid"):
        violations.append(
            violation("one of 'Body', 'MediaUrl' or 'ContentSid' is required", "Body", 21602)
        )
    for body in form.get("Body", []):
        if len(body) > MAX_MESSAGE_BODY_CHARACTERS:
            violations.append(
                violation(
                    f"'Body' is {len(body)} characters; Twilio's limit is "
                    f"{MAX_MESSAGE_BODY_CHARACTERS}",
                    "Body",
                    21617,
                )
            )
    return violations


def _calls_create_rules(request: _RequestParts) -> list[ContractViolation]:
    """Twilio's documented rule for ``POST .../Calls.json``: say what to do on answer."""
    if any(request.form.get(name) for name in ("Url", "Twiml", "ApplicationSid")):
        return []
    return [
        ContractViolation(
            "business_rule",
            "CreateCall: one of 'Url', 'Twiml' or 'ApplicationSid' is required",
            "Url",
            21205,
        )
    ]


# The data packages Lookup v2 knows; the spec types ``Fields`` as a bare string and lists
# them only in the parameter's description.
LOOKUP_DATA_PACKAGES = frozenset(
    {
        "validation",
        "caller_name",
        "sim_swap",
        "call_forwarding",
        "line_status",
        "line_type_intelligence",
        "identity_match",
        "reassigned_number",
        "sms_pumping_risk",
        "phone_number_quality_score",
        "pre_fill",
    }
)


def _lookup_rules(request: _RequestParts) -> list[ContractViolation]:
    """Lookup v2: ``PhoneNumber`` is typed only ``string`` and ``Fields`` only in prose."""
    violations: list[ContractViolation] = []
    number = request.path_values.get("PhoneNumber", "")
    problem: str | None = None
    if number.startswith("+") and not _E164.match(number):
        problem = "starts with '+' but is not E.164"
    elif not any(character.isdigit() for character in number):
        problem = "has no digits"
    if problem is not None:
        message = f"FetchPhoneNumber: path parameter 'PhoneNumber' = {_show(number)} {problem}"
        violations.append(ContractViolation("path_parameter", message, "PhoneNumber", 20404))
    fields = request.query.get("Fields")
    if fields is not None:
        unknown = [name for name in fields.split(",") if name.strip() not in LOOKUP_DATA_PACKAGES]
        if unknown:
            message = (
                f"FetchPhoneNumber: query parameter 'Fields' = {_show(fields)} names unknown "
                f"data packages {', '.join(map(repr, unknown))}"
            )
            violations.append(ContractViolation("query_parameter", message, "Fields"))
    return violations


_BUSINESS_RULES: Mapping[str, _BusinessRule] = {
    "CreateMessage": _messages_create_rules,
    "CreateCall": _calls_create_rules,
    "FetchPhoneNumber": _lookup_rules,
}


# Twilio error codes for a wrong value in the Messages API's best-known fields.
_INVALID_FIELD_CODES: Mapping[str, int] = {
    "To": 21211,
    "From": 21212,
    "StatusCallback": 21609,
    "MediaUrl": 21620,
    "Body": 21617,
    "Url": 21205,
}
_MISSING_FIELD_CODES: Mapping[str, int] = {"To": 21604, "From": 21603, "Body": 21602}


def _field_code(name: str) -> int | None:
    return _INVALID_FIELD_CODES.get(name)


def _missing_field_code(name: str) -> int | None:
    return _MISSING_FIELD_CODES.get(name)


def _type_problem(type_name: str | None, value: str) -> str | None:
    if type_name == "integer" and not _INTEGER.match(value):
        return "is not an integer"
    if type_name == "number":
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if not math.isfinite(number):
            return "is not a finite number"
    if type_name == "boolean" and value not in ("true", "false"):
        return "is not a boolean ('true' or 'false')"
    if type_name == "object":
        try:
            parsed = json.loads(value)
        except ValueError:
            return "is not a JSON object"
        if not isinstance(parsed, dict):
            return "is not a JSON object"
    return None


def _format_problem(format_name: str, value: str) -> str | None:
    check = _FORMAT_CHECKS.get(format_name)
    return check(value) if check is not None else None


def _phone_number_problem(value: str) -> str | None:
    if _E164.match(value) or _CHANNEL_ADDRESS.match(value):
        return None
    return "is not an E.164 phone number like +13105550100"


def _endpoint_problem(value: str) -> str | None:
    if _E164.match(value) or _VOICE_ENDPOINT.match(value):
        return None
    return "is not an E.164 phone number, client:identity or sip: address"


def _uri_problem(value: str) -> str | None:
    if len(value) > MAX_CALLBACK_URL_CHARACTERS:
        return f"is longer than {MAX_CALLBACK_URL_CHARACTERS} characters"
    if any(character.isspace() for character in value):
        return "contains whitespace; it is not a URL"
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not hostname:
        return "is not an absolute http(s) URL"
    if "_" in hostname:
        return "has an underscore in its hostname, which Twilio rejects"
    return None


def _date_problem(value: str) -> str | None:
    if _ISO_DATE.match(value):
        try:
            date.fromisoformat(value)
        except ValueError:
            return "is not a real calendar date"
        return None
    return "is not a date like 2024-05-31"


def _date_time_problem(value: str) -> str | None:
    if parse_twilio_datetime(value) is not None:
        return None
    if _SLASHED_DATE_TIME.match(value):
        return None
    return "is not a date-time (ISO 8601 like 2024-05-31T17:00:00Z, or RFC 2822)"


def _country_code_problem(value: str) -> str | None:
    return None if _COUNTRY_CODE.match(value) else "is not a two-letter ISO country code"


def _twiml_problem(value: str) -> str | None:
    if value.lstrip().startswith("<") and "<Response" in value:
        return None
    return "is not a TwiML document (<Response>...</Response>)"


_FORMAT_CHECKS: Mapping[str, Callable[[str], str | None]] = {
    "phone-number": _phone_number_problem,
    "endpoint": _endpoint_problem,
    "uri": _uri_problem,
    "date": _date_problem,
    "date-time": _date_time_problem,
    "iso-country-code": _country_code_problem,
    "twiml": _twiml_problem,
}


def parse_twilio_datetime(value: str) -> datetime | None:
    """Read a date or date-time the way Twilio's filters accept them; ``None`` if unreadable.

    Accepts ``2024-05-31``, ISO 8601 (``2024-05-31T17:00:00Z``, with or without offset) and
    RFC 2822 (``Fri, 31 May 2024 17:00:00 +0000``). A value without an offset is GMT,
    as Twilio documents. The answer is always timezone-aware.
    """
    text = value.strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _show(value: str, limit: int = 60) -> str:
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value)} characters)"
    return repr(value)


def _plain_number(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)

"""A Google API discovery document (Calendar v3) turned into an :class:`ApiContract`.

Discovery documents say what OpenAPI says in other words: ``resources.*.methods`` hold
each method's ``httpMethod``, ``path`` (below ``servicePath``) and ``parameters``; the
document's own ``parameters`` (``alt``, ``fields``, ``quotaUser`` ...) apply to every
method; schemas ``$ref`` each other by bare name; 64-bit integers travel as strings
(``format: int64``); and a property is required per method, in
``annotations.required`` (``Event.start`` for ``calendar.events.insert``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

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

GOOGLE_CALENDAR_SPEC = "google_calendar_v3.json"

# Event ids we choose must be base32hex (a-v, 0-9), 5 to 1024 characters (Event.id).
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
# Parameters that ``events.list`` refuses beside ``syncToken`` (its description lists them).
SYNC_TOKEN_EXCLUSIVE = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
WATCH_CHANNEL_TYPES = frozenset({"web_hook", "webhook"})


def google_calendar_contract(path: Path | None = None) -> ApiContract:
    """Calendar API v3 from :func:`default_spec_dir` (or ``path``), read once."""
    target = path.resolve() if path is not None else default_spec_dir() / GOOGLE_CALENDAR_SPEC
    return _load(target)


@functools.cache
def _load(path: Path) -> ApiContract:
    return contract_from_discovery(read_json_document(path), business_rules=CALENDAR_RULES)


def contract_from_discovery(
    document: Mapping[str, Any], *, business_rules: Mapping[str, BusinessRule] | None = None
) -> ApiContract:
    """Build the contract from a parsed discovery document."""
    if "resources" not in document or "servicePath" not in document:
        raise ValueError("not a discovery document (no 'resources' or 'servicePath')")
    schemas = {name: _rule(node) for name, node in document.get("schemas", {}).items()}
    common = {name: _parameter(name, node) for name, node in document.get("parameters", {}).items()}
    operations = [_operation(method, common) for method in _methods(document.get("resources", {}))]
    base_path = "/" + str(document["servicePath"]).strip("/")
    title = str(document.get("title", document.get("name", "the discovery document")))
    return ApiContract(title, base_path, operations, schemas, business_rules=business_rules)


def _methods(resources: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for resource in resources.values():
        yield from resource.get("methods", {}).values()
        yield from _methods(resource.get("resources", {}))


def _operation(method: Mapping[str, Any], common: Mapping[str, ParameterRule]) -> Operation:
    path_parameters: dict[str, ParameterRule] = {}
    query_parameters: dict[str, ParameterRule] = dict(common)
    for name, node in method.get("parameters", {}).items():
        parameter = _parameter(name, node)
        if parameter.location == "path":
            path_parameters[name] = parameter
        else:
            query_parameters[name] = parameter
    request = method.get("request")
    body = SchemaRule(ref=str(request["$ref"])) if request is not None else None
    return Operation(
        operation_id=str(method["id"]),
        method=str(method["httpMethod"]).upper(),
        template="/" + str(method["path"]),
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        body=body,
        body_required=body is not None,
        scopes=tuple(method.get("scopes", [])),
    )


def _parameter(name: str, node: Mapping[str, Any]) -> ParameterRule:
    location: Literal["path", "query"] = "path" if node.get("location") == "path" else "query"
    return ParameterRule(
        name,
        location,
        _rule(node),
        required=bool(node.get("required", False)),
        repeated=bool(node.get("repeated", False)),
    )


def _rule(node: Mapping[str, Any]) -> SchemaRule:
    reference = node.get("$ref")
    if reference is not None:
        return SchemaRule(ref=str(reference))
    properties = {name: _rule(child) for name, child in node.get("properties", {}).items()}
    required_for = {
        name: frozenset(child.get("annotations", {}).get("required", []))
        for name, child in node.get("properties", {}).items()
        if child.get("annotations", {}).get("required")
    }
    additional = node.get("additionalProperties")
    items = node.get("items")
    enum = node.get("enum")
    type_name = node.get("type")
    return SchemaRule(
        type=None if type_name == "any" else type_name,
        format=node.get("format"),
        enum=frozenset(str(value) for value in enum) if enum is not None else None,
        properties=properties,
        required_for=required_for,
        additional=_rule(additional) if isinstance(additional, dict) else None,
        items=_rule(items) if items is not None else None,
        read_only=bool(node.get("readOnly", False)),
        minimum=float(node["minimum"]) if "minimum" in node else None,
        maximum=float(node["maximum"]) if "maximum" in node else None,
    )


# --- Google's documented rules beyond the schema -----------------------------------------


def _violation(operation: str, where: str, problem: str) -> ContractViolation:
    return ContractViolation("business_rule", f"{operation}: {where} {problem}", where)


def _event_time_rules(operation: str, event: Mapping[str, Any]) -> list[ContractViolation]:
    violations: list[ContractViolation] = []
    for name in ("start", "end"):
        moment = event.get(name)
        if not isinstance(moment, dict):
            continue
        if "dateTime" in moment and "date" in moment:
            violations.append(_violation(operation, f"{name}", "has both date and dateTime"))
        elif "dateTime" not in moment and "date" not in moment:
            violations.append(_violation(operation, f"{name}", "has neither date nor dateTime"))
    return violations


def _events_insert_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    label = "calendar.events.insert"
    violations = _event_time_rules(label, body)
    event_id = body.get("id")
    if isinstance(event_id, str) and not EVENT_ID.match(event_id):
        violations.append(
            _violation(label, "id", f"= {event_id!r} is not base32hex (a-v, 0-9), 5-1024 long")
        )
    return violations


def _events_patch_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    return _event_time_rules("calendar.events.patch", body)


def _events_list_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    label = "calendar.events.list"
    if "syncToken" not in query:
        return []
    clashing = [name for name in SYNC_TOKEN_EXCLUSIVE if name in query]
    violations = [_violation(label, name, "cannot be sent with syncToken") for name in clashing]
    if query.get("showDeleted") == ["false"]:
        violations.append(_violation(label, "showDeleted", "cannot be false with syncToken"))
    return violations


def _freebusy_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    label = "calendar.freebusy.query"
    violations: list[ContractViolation] = []
    for name in ("timeMin", "timeMax"):
        if name not in body:
            violations.append(_violation(label, name, "is required"))
    if not body.get("items"):
        violations.append(_violation(label, "items", "is required (the calendars to query)"))
    if not violations:
        low, high = parse_rfc3339(body["timeMin"]), parse_rfc3339(body["timeMax"])
        if low is not None and high is not None and high <= low:
            violations.append(_violation(label, "timeMax", "is not after timeMin"))
    return violations


def _watch_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    label = "calendar.events.watch"
    violations: list[ContractViolation] = []
    if not body.get("id"):
        violations.append(_violation(label, "id", "is required (the channel id)"))
    if body.get("type") not in WATCH_CHANNEL_TYPES:
        violations.append(_violation(label, "type", "must be 'web_hook'"))
    address = body.get("address")
    parts = urlsplit(address) if isinstance(address, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        violations.append(_violation(label, "address", "must be an absolute https URL"))
    return violations


def _channels_stop_rules(query: Mapping[str, list[str]], body: Any) -> list[ContractViolation]:
    label = "calendar.channels.stop"
    return [
        _violation(label, name, "is required to stop a channel")
        for name in ("id", "resourceId")
        if not body.get(name)
    ]


CALENDAR_RULES: Mapping[str, BusinessRule] = {
    "calendar.events.insert": _events_insert_rules,
    "calendar.events.patch": _events_patch_rules,
    "calendar.events.list": _events_list_rules,
    "calendar.events.watch": _watch_rules,
    "calendar.freebusy.query": _freebusy_rules,
    "calendar.channels.stop": _channels_stop_rules,
}

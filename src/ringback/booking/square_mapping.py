"""Mapping a Ringback location to Square Appointments: Square's locations, team members and
bookable service variations, matched to the location's providers and services (by name
where no mapping is set yet), and checked against what Square lists before anything is
saved.

``ringback square map`` and the owner page ``/staff/settings/booking-systems/square`` both
build on this and save through :func:`ringback.settings.store.save_square`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ringback.config import Location, Service
from ringback.integrations.square import (
    SquareBookingSystem,
    SquareLocation,
    SquareService,
    SquareTeamMember,
)
from ringback.ports import BookingSystemUnavailable

T = TypeVar("T")
DEFAULT_TOKEN_ENV = "SQUARE_ACCESS_TOKEN"  # noqa: S105 (a variable's name)


class MappingProblem(Exception):
    """The mapping names something Square does not list, or leaves out what must be mapped.
    ``errors`` maps each form field (``square_location``, ``provider.<id>``,
    ``service.<n>``) to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class SquareCatalog:
    """What Square lists for the seller: its locations and, for the chosen location
    (``location_id``; empty when none could be chosen), team members and services."""

    locations: tuple[SquareLocation, ...]
    location_id: str
    members: tuple[SquareTeamMember, ...] = ()
    services: tuple[SquareService, ...] = ()

    def location_name(self, location_id: str) -> str:
        return next((loc.name for loc in self.locations if loc.id == location_id), location_id)


@dataclass(frozen=True)
class SquareMapping:
    """Square's ids for a Ringback location: provider id → team member id, service name →
    service variation id (empty: not mapped)."""

    location_id: str
    team_members: dict[str, str]
    services: dict[str, str]


def token_env(location: Location) -> str:
    return location.square.access_token_env if location.square else DEFAULT_TOKEN_ENV


def access_token(location: Location, stored: Mapping[str, Any] | None) -> str:
    """The sealed token stored for the location, else its environment variable's."""
    return str((stored or {}).get("access_token") or os.environ.get(token_env(location), ""))


def read_catalog(token: str, base_url: str, chosen: str, *, timeout: float) -> SquareCatalog:
    """Square's locations and, for ``chosen`` (or the only location), its team members and
    services. Raises :class:`BookingSystemUnavailable` (see :func:`explain`)."""
    lister = SquareBookingSystem(token, chosen or "-", base_url=base_url, timeout=timeout)
    try:
        found = tuple(lister.locations())
    finally:
        lister.close()
    if not chosen and len(found) == 1:
        chosen = found[0].id
    if chosen not in {loc.id for loc in found}:
        return SquareCatalog(found, "")
    square = SquareBookingSystem(token, chosen, base_url=base_url, timeout=timeout)
    try:
        return SquareCatalog(found, chosen, tuple(square.team_members()), tuple(square.services()))
    finally:
        square.close()


def unchosen(catalog: SquareCatalog, asked: str) -> str:
    """Why no Square location is chosen (``catalog.location_id`` is empty)."""
    if asked:
        known = ", ".join(f"{loc.id} ({loc.name})" for loc in catalog.locations) or "none"
        return f"square_location: {asked!r} is not one of the seller's locations (known: {known})"
    if not catalog.locations:
        return "square_location: the Square account has no locations"
    return "square_location: several Square locations: choose one"


def explain(exc: BookingSystemUnavailable, location: Location) -> str:
    """What a person should know when reading Square failed."""
    detail = exc.detail
    if "HTTP 401" in detail:
        return (
            f"Square refused the access token (expired, revoked or wrong): put a new one in "
            f"{token_env(location)} or run `ringback square map --token-stdin --save` ({detail})"
        )
    if "HTTP 403" in detail:
        return (
            "Square refused: the access token lacks a permission (it needs MERCHANT_PROFILE_READ,"
            f" EMPLOYEES_READ, ITEMS_READ and the APPOINTMENTS ones) ({detail})"
        )
    if exc.retry:
        return f"Square is not answering right now; try again in a minute ({detail})"
    return f"Square: {detail}"


def mapped_services(location: Location) -> list[Service]:
    """The services a Square location maps (consultations are not booked there)."""
    return [service for service in location.services if not service.consult]


def required(location: Location, service: Service) -> bool:
    """A service some provider performs must have a service variation."""
    return any(p.performs(service.name) for p in location.providers)


def proposed(location: Location, catalog: SquareCatalog) -> SquareMapping:
    """The location's mapping where set, else Square's item of the same name."""
    current = location.square
    same_place = current is not None and current.location_id == catalog.location_id
    team: dict[str, str] = {}
    for provider in location.providers:
        member = current.team_members.get(provider.id, "") if current and same_place else ""
        if not member and (found := by_name(provider.name, catalog.members, _name)) is not None:
            member = found.id
        team[provider.id] = member
    services: dict[str, str] = {}
    for service in mapped_services(location):
        variation = (current.variation_for(service.name) or "") if current and same_place else ""
        if not variation and (found_v := by_name(service.name, catalog.services, _name)):
            variation = found_v.variation_id
        services[service.name] = variation
    return SquareMapping(catalog.location_id, team, services)


def checked(location: Location, catalog: SquareCatalog, mapping: SquareMapping) -> SquareMapping:
    """The mapping if every id is one Square lists and nothing required is left out; else
    :class:`MappingProblem` naming each field."""
    errors: dict[str, str] = {}
    place = catalog.location_name(mapping.location_id)
    if mapping.location_id != catalog.location_id or not catalog.location_id:
        errors["square_location"] = unchosen(catalog, mapping.location_id)
    members = {m.id for m in catalog.members}
    for provider in location.providers:
        member = mapping.team_members.get(provider.id, "")
        field = f"provider.{provider.id}"
        if not member:
            errors[field] = f"{field}: choose Square's team member for {provider.name}"
        elif member not in members:
            errors[field] = f"{field}: {member!r} is not one of Square's team members at {place}"
    variations = {v.variation_id for v in catalog.services}
    for n, service in enumerate(location.services):
        if service.consult:
            continue
        variation = mapping.services.get(service.name, "")
        field = f"service.{n}"
        if not variation:
            if required(location, service):
                errors[field] = f"{field}: choose Square's service for {service.name}"
        elif variation not in variations:
            errors[field] = f"{field}: {variation!r} is not one of Square's bookable services"
    if errors:
        raise MappingProblem(errors)
    return SquareMapping(
        mapping.location_id,
        dict(mapping.team_members),
        {name: v for name, v in mapping.services.items() if v},
    )


def settings_block(location: Location, mapping: SquareMapping) -> dict[str, Any]:
    """The location's ``square`` settings with this mapping (its other keys kept)."""
    current = location.square
    block: dict[str, Any] = {
        "location_id": mapping.location_id,
        "access_token_env": token_env(location),
        "team_members": dict(mapping.team_members),
        "services": dict(mapping.services),
    }
    if current is not None:
        if current.webhook_signature_key_env != "SQUARE_WEBHOOK_SIGNATURE_KEY":
            block["webhook_signature_key_env"] = current.webhook_signature_key_env
        if current.environment != "production":
            block["environment"] = current.environment
    return block


def by_name(name: str, items: tuple[T, ...] | list[T], name_of: Callable[[T], str]) -> T | None:
    """The item whose name is ``name`` (any case), else the only one that starts with it."""
    wanted = name.casefold()
    exact = [i for i in items if name_of(i).casefold() == wanted]
    if exact:
        return exact[0]
    starts = [i for i in items if name_of(i).casefold().startswith(wanted)]
    return starts[0] if len(starts) == 1 else None


def _name(item: SquareTeamMember | SquareService) -> str:
    return item.name

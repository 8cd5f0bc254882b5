"""Who may do what: the three roles and the one table every role check asks.

* **owner**: everything, including what could hand the clinic's data or accounts to
  someone else: making owners, everyone's API tokens, outbound webhooks (they send
  patient events out), connecting phone numbers (the Twilio/SignalWire credentials), and
  erasing a patient's data.
* **admin** (an office manager): every location; the settings (locations, services,
  providers, message templates, reminders, booking systems, texting registration, the
  change log) and the team, except owners' accounts.
* **staff**: the inbox, patients and calendar of their own locations; their own API tokens.

Pages, the JSON API and the CLI ask :func:`can` rather than comparing role names, so a
change of policy is a change to :data:`CAPABILITIES` alone. No imports from the rest of
Ringback: the models use it too.
"""

from __future__ import annotations

from typing import Literal, Protocol, get_args

Role = Literal["owner", "admin", "staff"]
ROLES: tuple[Role, ...] = get_args(Role)
ROLE_LABELS: dict[str, str] = {
    "owner": "Owner",
    "admin": "Admin (office manager)",
    "staff": "Staff",
}

Capability = Literal[
    "all_locations",  # sees every location; needs no list of locations
    "settings",  # location settings, templates, reminders, change log, texting registration
    "booking_systems",  # choose a location's booking system and connect Google Calendar
    "team",  # invite, change access, deactivate, reactivate, reset links (not owners)
    "manage_owners",  # make an owner, or change, deactivate or reset an owner's account
    "all_api_tokens",  # see and revoke everyone's API tokens (anyone manages their own)
    "webhooks",  # outbound webhooks: add, pause, rotate the signing secret, deliveries
    "phone_numbers",  # connect Twilio/SignalWire numbers with the account's credentials
    "erase_patients",  # delete a patient's personal data
]

CAPABILITIES: dict[str, frozenset[Capability]] = {
    "owner": frozenset(get_args(Capability)),
    "admin": frozenset({"all_locations", "settings", "booking_systems", "team"}),
    "staff": frozenset(),
}


class HasRole(Protocol):
    @property
    def role(self) -> str: ...


def role_can(role: str, capability: Capability) -> bool:
    return capability in CAPABILITIES.get(role, frozenset())


def can(user: HasRole, capability: Capability) -> bool:
    """Whether ``user`` (a signed-in person, an account, an API caller) may do this."""
    return role_can(user.role, capability)

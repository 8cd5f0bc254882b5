"""Staff in tests: drive a conversation to where staff act on it, then post their forms
with the page's CSRF token, and read what the page refused."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from ringback.models import Conversation, Patient
from tests.conftest import Service, wait_for
from tests.staff.conftest import page_csrf
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

WESTSIDE = "+13105550200"
URGENT_TEXT = "my lip is really swollen and turning white after filler yesterday"


# --- driving conversations ------------------------------------------------------------


def conversation_of(service: Service, caller: str) -> Conversation:
    conversation: Conversation = wait_for(
        lambda: service.scalar(
            select(Conversation)
            .join(Patient, Patient.id == Conversation.patient_id)
            .where(Patient.phone == caller)
            .order_by(Conversation.id.desc())
        ),
        what=f"a conversation with {caller}",
    )
    return conversation


def reload(service: Service, conversation_id: int) -> Conversation:
    conversation: Conversation = service.scalar(
        select(Conversation).where(Conversation.id == conversation_id)
    )
    return conversation


def wait_status(service: Service, conversation_id: int, status: str) -> Conversation:
    conversation: Conversation = wait_for(
        lambda: (c := reload(service, conversation_id)).status == status and c,
        what=f"conversation {conversation_id} to be {status}",
    )
    return conversation


def with_the_bot(service: Service, index: int) -> tuple[str, int]:
    """A missed caller who named a treatment; the bot has just asked for a time."""
    caller = caller_number(index)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox please")
    next_text(service, caller, 2)
    return caller, conversation_of(service, caller).id


def handed_off(service: Service, index: int) -> tuple[str, int]:
    """A missed caller who asked for a person: the conversation needs staff."""
    caller = caller_number(index)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox. can someone call me though?")
    next_text(service, caller, 2)
    conversation_id = conversation_of(service, caller).id
    wait_status(service, conversation_id, "needs_staff")
    return caller, conversation_id


def urgent(service: Service, index: int, text: str = URGENT_TEXT) -> tuple[str, int]:
    """A missed caller who then reported a symptom after a treatment: urgent."""
    caller = caller_number(index)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, text)
    next_text(service, caller, 2)
    conversation_id = conversation_of(service, caller).id
    wait_status(service, conversation_id, "urgent")
    return caller, conversation_id


def at_westside(service: Service, index: int) -> tuple[str, int]:
    """A patient who texted the Westside number (no call): a conversation there."""
    caller = caller_number(index)
    text_in(service, caller, "hi do you do botox", To=WESTSIDE)
    conversation = conversation_of(service, caller)
    assert conversation.location_id == "glow-westside"
    return caller, conversation.id


# --- posting forms ----------------------------------------------------------------------


def page(client: httpx.Client, conversation_id: int) -> httpx.Response:
    return client.get(f"/staff/conversations/{conversation_id}")


def nonce_of(html: str) -> str:
    match = re.search(r'name="nonce" value="([^"]+)"', html)
    assert match, "no reply form on the page"
    return match.group(1)


def act(
    client: httpx.Client,
    conversation_id: int,
    action: str,
    data: dict[str, str] | None = None,
    *,
    csrf: bool = True,
) -> httpx.Response:
    form = dict(data or {})
    if csrf:
        form["csrf_token"] = page_csrf(client, f"/staff/conversations/{conversation_id}")
    return client.post(f"/staff/conversations/{conversation_id}/{action}", data=form)


def send_reply(client: httpx.Client, conversation_id: int, body: str) -> httpx.Response:
    nonce = nonce_of(page(client, conversation_id).text)
    return act(client, conversation_id, "reply", {"body": body, "nonce": nonce})


def refused_field(response: httpx.Response) -> str:
    match = re.search(r'class="error field-error" role="alert" data-field="([^"]+)"', response.text)
    assert match, "no field error on the page"
    return match.group(1)

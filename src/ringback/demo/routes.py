"""The demo phone page and its small JSON API (only mounted by ``ringback demo``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field, field_validator

from ringback.demo import DEMO_OWNER_EMAIL, DEMO_OWNER_PASSWORD
from ringback.demo.network import PhoneNetwork
from ringback.demo.reminder import DemoReminderError, book_and_remind
from ringback.demo.waitlist import free_a_slot
from ringback.phones import InvalidPhoneNumber, normalize_e164
from ringback.web import deps_of

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)

router = APIRouter(prefix="/demo", tags=["demo"])


def _network(request: Request) -> PhoneNetwork:
    network: PhoneNetwork = request.app.state.demo_network
    return network


def _number(value: str) -> str:
    try:
        return normalize_e164(value)
    except InvalidPhoneNumber as exc:
        raise ValueError("expected a phone number like +12135550123") from exc


class CallRequest(BaseModel):
    caller: str
    to: str

    @field_validator("caller", "to")
    @classmethod
    def _e164(cls, value: str) -> str:
        return _number(value)


class TextRequest(BaseModel):
    sender: str
    to: str
    body: str = Field(min_length=1, max_length=1600)

    @field_validator("sender", "to")
    @classmethod
    def _e164(cls, value: str) -> str:
        return _number(value)


@router.get("", response_class=HTMLResponse)
async def phone_page(request: Request) -> HTMLResponse:
    network = _network(request)
    template = TEMPLATES.get_template("demo_phone.html")
    return HTMLResponse(
        template.render(
            locations=list(network.locations),
            owner_email=DEMO_OWNER_EMAIL,
            owner_password=DEMO_OWNER_PASSWORD,
        )
    )


@router.post("/api/calls")
async def place_call(request: Request, body: CallRequest) -> dict[str, str]:
    network = _network(request)
    if network.locations.by_number(body.to) is None:
        raise HTTPException(404, f"to: no demo location has the number {body.to}")
    call = network.place_call(body.caller, body.to)
    return {"sid": call.sid}


@router.post("/api/calls/{sid}/hangup")
async def hang_up(request: Request, sid: str) -> dict[str, bool]:
    if not _network(request).hang_up(sid):
        raise HTTPException(404, f"sid: no ringing call {sid}")
    return {"ok": True}


@router.post("/api/texts")
async def send_text(request: Request, body: TextRequest) -> dict[str, int]:
    status = await _network(request).send_text(body.sender, body.to, body.body)
    return {"webhook_status": status}


@router.post("/api/reminders")
def remind(request: Request, body: CallRequest) -> dict[str, object]:
    """Book the caller's next free time and send its reminder now."""
    try:
        sent = book_and_remind(deps_of(request), body.caller, body.to)
    except DemoReminderError as error:
        raise HTTPException(409 if error.field == "to" else 422, str(error)) from error
    return {
        "appointment_id": sent.appointment_id,
        "when": sent.when,
        "status": sent.status,
        "skip_reason": sent.skip_reason,
    }


@router.post("/api/waitlist")
def refill(request: Request, body: CallRequest) -> dict[str, object]:
    """Put the phone on the waitlist, free a slot and text it to the phone now."""
    try:
        result = free_a_slot(deps_of(request), body.caller, body.to)
    except DemoReminderError as error:
        raise HTTPException(409 if error.field == "to" else 422, str(error)) from error
    return {"when": result.when, "offered": result.offered, "reason": result.reason}


@router.get("/api/phone/{number}")
async def phone(request: Request, number: str) -> dict[str, object]:
    try:
        e164 = _number(number)
    except ValueError as exc:
        raise HTTPException(400, f"number: {exc}") from exc
    return _network(request).phone_state(e164)

"""``ringback demo``: the demo spa on a simulated phone network, no Twilio account needed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from ringback.app import create_app
from ringback.config import Location, Locations, Provider, Settings, load_locations
from ringback.db import transaction
from ringback.demo import DEMO_OWNER_EMAIL, DEMO_OWNER_PASSWORD, routes
from ringback.demo.network import PhoneNetwork
from ringback.fakes.twilio import FakeTwilio, create_fake_twilio_app
from ringback.logs import configure_logging
from ringback.runtime import build_runtime
from ringback.schema import upgrade
from ringback.staff import auth

DEMO_LOCATIONS = Path(__file__).parent / "locations.yaml"
DEMO_ACCOUNT_SID = "AC" + "de" * 16
DEMO_AUTH_TOKEN = "demo-auth-token-not-a-secret"  # noqa: S105 - the demo network only
DEMO_RING_SECONDS = 8


# Who the demo spa books with. The packaged locations file is also the test suite's
# config (where glow-downtown texts an outside booking URL), so the demo process adds its
# providers here instead: the demo then offers real times by text and on its booking page.
DEMO_PROVIDERS: dict[str, tuple[Provider, ...]] = {
    "glow-downtown": (
        Provider(id="maya", name="Maya", services=("Botox", "Filler", "Microneedling")),
        Provider(
            id="lena",
            name="Lena",
            services=("HydraFacial", "Chemical Peel", "Laser Hair Removal", "Microneedling"),
        ),
    ),
    "glow-westside": (Provider(id="sofia", name="Sofia", services=("Botox", "Filler")),),
}
DEMO_PREP_NOTES = {"Botox": "Please skip alcohol the day before."}


def demo_locations(ring_seconds: int = DEMO_RING_SECONDS) -> Locations:
    """The packaged demo spa, ringing for a few seconds so a person need not wait 18, and
    booking itself (its own providers and booking page instead of an outside URL)."""
    loaded = load_locations(DEMO_LOCATIONS)
    return Locations(tuple(_books_itself(loc, ring_seconds) for loc in loaded))


def _books_itself(location: Location, ring_seconds: int) -> Location:
    providers = DEMO_PROVIDERS.get(location.id, ())
    services = tuple(
        s.model_copy(update={"prep_note": DEMO_PREP_NOTES[s.name]})
        if s.name in DEMO_PREP_NOTES and s.prep_note is None
        else s
        for s in location.services
    )
    changed = location.model_dump() | {"services": [s.model_dump() for s in services]}
    if providers:
        changed |= {"booking_url": None, "providers": [p.model_dump() for p in providers]}
    # The demo is tried at any hour: its waitlist offers are not held for texting hours.
    changed |= {"texting_hours": "00:00-23:59"}
    # Validated again, so a provider naming a service the menu lacks fails at start-up.
    booking = Location.model_validate(changed)
    # Tests ring for less than the 5 s a real locations file allows: not validated.
    return booking.model_copy(update={"ring_seconds": min(location.ring_seconds, ring_seconds)})


def demo_settings(*, public_url: str, data_dir: Path) -> Settings:
    """Settings that point Ringback's Twilio client at the demo's own simulated network."""
    return Settings(
        RINGBACK_DATA_DIR=data_dir,
        RINGBACK_PUBLIC_URL=public_url,
        RINGBACK_CONFIG=DEMO_LOCATIONS,
        TWILIO_ACCOUNT_SID=DEMO_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEMO_AUTH_TOKEN,
        TWILIO_API_BASE_URL=f"{public_url}/demo/network",
        TWILIO_LOOKUP_BASE_URL=f"{public_url}/demo/network",
    )


def build_demo_app(*, public_url: str, data_dir: Path, ring_seconds: int | None = None) -> FastAPI:
    """The demo app, served at ``public_url``: Ringback, the phone page and the network.

    ``public_url`` must be where the app will really listen: the simulated network posts
    Ringback's webhooks there and signs them for that address. ``ring_seconds`` shortens
    the front desk's ring below :data:`DEMO_RING_SECONDS` (tests use 2).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = demo_settings(public_url=public_url, data_dir=data_dir)
    locations = demo_locations(DEMO_RING_SECONDS if ring_seconds is None else ring_seconds)
    twilio = FakeTwilio(
        account_sid=DEMO_ACCOUNT_SID,
        auth_token=DEMO_AUTH_TOKEN,
        simulate_delivery=True,
        delivery_step_seconds=0.4,
    )
    runtime = build_runtime(settings, locations)
    upgrade(runtime.engine)
    _ensure_demo_owner(runtime.deps.sessions, locations)
    app = create_app(runtime)
    app.state.demo_network = PhoneNetwork(
        public_url, DEMO_AUTH_TOKEN, DEMO_ACCOUNT_SID, twilio, locations
    )
    app.include_router(routes.router)
    app.mount("/demo/network", create_fake_twilio_app(twilio))
    return app


def _ensure_demo_owner(sessions: sessionmaker[Session], locations: Locations) -> None:
    with transaction(sessions) as session:
        if auth.find_user(session, DEMO_OWNER_EMAIL) is None:
            auth.create_user(
                session,
                email=DEMO_OWNER_EMAIL,
                name="Demo Owner",
                role="owner",
                password=DEMO_OWNER_PASSWORD,
                location_ids=[],
                known_locations={loc.id for loc in locations},
                now=datetime.now(UTC),
            )


def run_demo(*, host: str, port: int, reset: bool, data_dir: Path = Path("var/demo")) -> None:
    if reset and data_dir.exists():
        shutil.rmtree(data_dir)
    public_url = f"http://{host}:{port}"
    # Logging is process-wide, so it is set here and not in build_demo_app (tests build
    # the app inside pytest, whose log capture must stay as it is).
    configure_logging(demo_settings(public_url=public_url, data_dir=data_dir).log_level)
    app = build_demo_app(public_url=public_url, data_dir=data_dir)
    print(
        f"Ringback demo: the phone is at {public_url}/demo\n"
        f"the staff inbox is at {public_url}/staff "
        f"(sign in as {DEMO_OWNER_EMAIL} / {DEMO_OWNER_PASSWORD})\n(Ctrl-C to stop)",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, proxy_headers=False)

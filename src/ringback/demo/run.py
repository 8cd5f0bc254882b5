"""``ringback demo``: the demo spa on a simulated phone network, no Twilio account needed."""

from __future__ import annotations

import shutil
from pathlib import Path

import uvicorn

from ringback.app import create_app
from ringback.config import Locations, Settings, load_locations
from ringback.demo import routes
from ringback.demo.network import PhoneNetwork
from ringback.integrations.twilio_fake import FakeTwilio, create_fake_twilio_app
from ringback.logs import configure_logging
from ringback.runtime import build_runtime
from ringback.schema import upgrade

DEMO_LOCATIONS = Path(__file__).parent / "locations.yaml"
DEMO_ACCOUNT_SID = "AC" + "de" * 16
DEMO_AUTH_TOKEN = "demo-auth-token-not-a-secret"  # noqa: S105 - the demo network only
DEMO_RING_SECONDS = 8


def demo_locations() -> Locations:
    """The packaged demo spa, ringing for a few seconds so a person need not wait 18."""
    loaded = load_locations(DEMO_LOCATIONS)
    return Locations(
        tuple(
            loc.model_copy(update={"ring_seconds": min(loc.ring_seconds, DEMO_RING_SECONDS)})
            for loc in loaded
        )
    )


def run_demo(*, host: str, port: int, reset: bool, data_dir: Path = Path("var/demo")) -> None:
    if reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    public_url = f"http://{host}:{port}"
    settings = Settings(
        RINGBACK_DATA_DIR=data_dir,
        RINGBACK_PUBLIC_URL=public_url,
        RINGBACK_CONFIG=DEMO_LOCATIONS,
        TWILIO_ACCOUNT_SID=DEMO_ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=DEMO_AUTH_TOKEN,
        TWILIO_API_BASE_URL=f"{public_url}/demo/network",
        TWILIO_LOOKUP_BASE_URL=f"{public_url}/demo/network",
    )
    configure_logging(settings.log_level)
    locations = demo_locations()
    twilio = FakeTwilio(
        account_sid=DEMO_ACCOUNT_SID,
        auth_token=DEMO_AUTH_TOKEN,
        simulate_delivery=True,
        delivery_step_seconds=0.4,
    )
    runtime = build_runtime(settings, locations)
    upgrade(runtime.engine)
    app = create_app(runtime)
    app.state.demo_network = PhoneNetwork(
        public_url, DEMO_AUTH_TOKEN, DEMO_ACCOUNT_SID, twilio, locations
    )
    app.include_router(routes.router)
    app.mount("/demo/network", create_fake_twilio_app(twilio))
    print(f"Ringback demo: open {public_url}/demo  (Ctrl-C to stop)", flush=True)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)

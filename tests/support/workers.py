"""``ringback worker`` processes beside a test's service, on its database and queue."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import Service


def worker_process_env(service: Service, *, workers: int = 1) -> dict[str, str]:
    settings = service.runtime.settings
    return dict(
        os.environ,
        RINGBACK_DATABASE_URL=settings.resolved_database_url,
        RINGBACK_QUEUE_URL=settings.resolved_queue_url,
        RINGBACK_QUEUE_NAME=settings.queue_name,
        RINGBACK_CONFIG=str(service.config_path),
        RINGBACK_PUBLIC_URL=settings.public_url,
        RINGBACK_WORKERS=str(workers),
        RINGBACK_SEND_TIMEOUT="60",
        RINGBACK_SPOOL_DIR=str(settings.resolved_spool_dir),
        TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
        TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
        TWILIO_API_BASE_URL=settings.twilio_api_base_url,
        TWILIO_LOOKUP_BASE_URL=settings.twilio_lookup_base_url,
    )


def worker_process(service: Service, *, workers: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ringback.cli", "worker"],
        env=worker_process_env(service, workers=workers),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

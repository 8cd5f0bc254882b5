"""create_app(): the web app, its lifespan (embedded worker), routers and health."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from ringback import jobs
from ringback import web as staff_web
from ringback.api import v1 as api_v1
from ringback.booking import api as booking_systems_api
from ringback.booking import feeds as booking_feeds
from ringback.booking import pages as booking_pages
from ringback.funnel import api as funnel_api
from ringback.funnel import pages as funnel_dashboard
from ringback.guards import Guards, Limits
from ringback.inbox.spool import SpoolService
from ringback.logs import log_event
from ringback.missed_calls import api as missed_calls_api
from ringback.outbound_webhooks import pages as webhooks_pages
from ringback.patients.pages import router as records_router
from ringback.runtime import Runtime, Sweeper, build_spool
from ringback.settings import booking_systems as settings_booking_systems
from ringback.settings import pages as settings_pages
from ringback.settings import team as settings_team
from ringback.settings import tokens as settings_tokens
from ringback.settings import twilio as settings_twilio
from ringback.staff import pages as staff_pages
from ringback.telephony.webhooks import signalwire_router, twilio_router

log = logging.getLogger(__name__)


def create_app(
    runtime: Runtime, *, run_worker: bool | None = None, run_sweeper: bool | None = None
) -> FastAPI:
    """Build the app. ``run_worker`` defaults to True on the embedded (SQLite) queue;
    ``run_sweeper`` (the recovery sweep, :class:`ringback.runtime.Sweeper`) to
    ``run_worker``."""
    embedded_worker = runtime.embedded_queue if run_worker is None else run_worker
    sweeping = embedded_worker if run_sweeper is None else run_sweeper

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything built at start-up lives as long as the process: keep it out of the
        # collector's full passes, and collect young objects less often, so a busy minute
        # is not punctuated by long stop-the-world collections.
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        consumer = None
        if embedded_worker:
            consumer = jobs.make_consumer(
                runtime.huey, runtime.settings.workers, embedded=True, periodic=True
            )
            consumer.start()
            log_event(log, "worker.embedded_started", workers=runtime.settings.workers)
        sweeper = Sweeper(runtime.deps).start() if sweeping else None
        # Built here, not in create_app: each process serving the app has its own spool.
        spool = build_spool(runtime)
        app.state.spool = spool.start() if spool is not None else None
        try:
            yield
        finally:
            if spool is not None:
                spool.stop()
            if sweeper is not None:
                sweeper.stop()
            if consumer is not None:
                consumer.stop(graceful=True)

    app = FastAPI(
        title="Ringback",
        version="0.1.0",
        summary="Recover the bookings a med spa loses to missed calls.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.spool = None
    app.state.deps = runtime.deps
    app.state.auth_token = runtime.settings.twilio_auth_token
    # Each provider's webhooks are verified with its own secret only.
    app.state.webhook_secrets = {
        "twilio": runtime.settings.twilio_auth_token,
        "signalwire": runtime.settings.signalwire_signing_key,
    }
    app.include_router(twilio_router)
    app.include_router(signalwire_router)
    app.include_router(staff_web.router)
    app.include_router(staff_pages.router)
    app.include_router(booking_systems_api.router)
    app.include_router(api_v1.router)
    app.include_router(funnel_api.router)
    app.include_router(funnel_dashboard.router)
    app.include_router(funnel_api.metrics_router)
    app.include_router(missed_calls_api.router)
    app.include_router(webhooks_pages.router)
    app.include_router(settings_pages.router)
    app.include_router(settings_booking_systems.router)
    app.include_router(settings_team.router)
    app.include_router(settings_tokens.router)
    app.include_router(settings_twilio.router)
    app.include_router(records_router)
    app.include_router(booking_pages.router)
    app.include_router(booking_feeds.router)
    settings_pages.watch_settings(app, runtime.settings_watcher)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # Outermost: forwarded headers, content types, body limits and security headers.
    app.add_middleware(
        Guards,
        limits=Limits(
            max_body_bytes=runtime.settings.max_body_bytes,
            max_upload_bytes=runtime.settings.max_upload_bytes,
            trusted_proxies=runtime.settings.trusted_proxy_networks,
        ),
    )

    @app.exception_handler(staff_web.NotSignedIn)
    async def not_signed_in(request: Request, exc: staff_web.NotSignedIn) -> Response:
        return staff_web.login_redirect(exc)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        # Browsers ask for /favicon.ico on pages that name no icon (JSON, error answers).
        return RedirectResponse("/static/favicon.svg", status_code=301)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> JSONResponse:
        """200 when the database and the queue answer; 503 naming what does not. Either
        way it tells the webhook spool's depth (events waiting for the database)."""
        problems: dict[str, str] = {}
        spool: SpoolService | None = app.state.spool
        spooled: dict[str, object] = {}
        if spool is not None:
            stats = await run_in_threadpool(spool.spool.stats)
            age = (
                round((runtime.deps.clock() - stats.oldest).total_seconds(), 3)
                if stats.oldest is not None
                else None
            )
            spooled = {"spool": {"depth": stats.depth, "oldest_age_seconds": age}}

        def check_db() -> None:
            # Through the spool's engine when there is one: it waits no longer than the
            # store budget (a SQLite file held by a long writer fails as "locked").
            engine = spool.engine if spool is not None else runtime.engine
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        for name, check in (("database", check_db), ("queue", lambda: jobs.ping(runtime.huey))):
            try:
                await run_in_threadpool(check)
            except Exception as exc:
                problems[name] = f"{type(exc).__name__}: {str(exc)[:200]}"
        if problems:
            return JSONResponse(
                {"status": "unavailable", "failing": problems, **spooled}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "ok", "queue": "ok", **spooled})

    return app

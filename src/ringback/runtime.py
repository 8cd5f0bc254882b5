"""Wiring: one object holding the engine, the queue, the adapters and the registered jobs.

``ringback serve``, ``ringback worker``, the tests and the benchmarks all build it with
:func:`build_runtime`, so every process runs the same jobs against the same adapters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from huey import Huey
from sqlalchemy.engine import Engine

from ringback import jobs
from ringback.booking import calendar_sync, system_changes
from ringback.booking import service as booking_service
from ringback.booking import systems as booking_systems_module
from ringback.config import Locations, Settings
from ringback.conversation import alerts as staff_alerts
from ringback.conversation import follow_ups, reminders, waitlist
from ringback.conversation import service as conversation_service
from ringback.conversation.inbound import NotReady
from ringback.db import make_engine, make_sessionmaker, single_flight
from ringback.deps import Deps
from ringback.inbox import events
from ringback.inbox.spool import SpoolService
from ringback.integrations.chat import HttpChatWebhook
from ringback.integrations.email import SmtpEmailer
from ringback.logs import log_event
from ringback.messaging import outbox
from ringback.outbound_webhooks import service as webhooks
from ringback.ports import (
    AlertDeliveryFailed,
    AlertEmailer,
    BookingSystemFactory,
    CalendarFactory,
    CallerLookup,
    ChatWebhook,
    EnqueueFailed,
    SmsSender,
)
from ringback.settings.store import SettingsWatcher
from ringback.telephony.senders import build_telephony

log = logging.getLogger(__name__)

EVENT_RETRIES = 8
EVENT_RETRY_DELAY = 1
# Staff alerts by email and chat: 1, 2, 4 ... 128 s apart, about four minutes in all.
ALERT_RETRIES = 8
ALERT_RETRY_DELAY = 1
ALERT_RETRY_BACKOFF = 2


def _now() -> datetime:
    return datetime.now(UTC)


class HueyJobs:
    """The :class:`ringback.ports.JobScheduler` on huey, plus the task definitions."""

    def __init__(
        self, huey: Huey, get_deps: Callable[[], Deps], clock: Callable[[], datetime]
    ) -> None:
        self.huey = huey
        self._clock = clock
        #: What a job reads when it starts: fresh settings when they changed, else the same deps.
        self.deps_for_job = get_deps

        @huey.task(name="handle_event", retries=EVENT_RETRIES, retry_delay=EVENT_RETRY_DELAY)
        def handle_event(event_id: int) -> None:
            deps = get_deps()
            try:
                events.handle(deps, event_id)
            except NotReady as exc:
                # Counted, so a receipt for a message we never sent has an end.
                events.note_failure(deps, event_id, f"not ready: {exc}")
                raise
            except Exception as exc:
                events.note_failure(deps, event_id, f"{type(exc).__name__}: {exc}")
                log.exception("event.failed", extra={"fields": {"event_id": event_id}})
                raise

        @huey.task(name="deliver_sms", retries=3, retry_delay=2)
        def deliver_sms(message_id: int) -> None:
            outbox.deliver(get_deps(), message_id)

        @huey.task(name="reconcile_sms", retries=3, retry_delay=5)
        def reconcile_sms(message_id: int, claim: str) -> None:
            outbox.reconcile(get_deps(), message_id, claim)

        @huey.task(name="conversation_timer", retries=3, retry_delay=5)
        def conversation_timer(conversation_id: int, kind: str) -> None:
            conversation_service.timer_due(get_deps(), conversation_id, kind)  # type: ignore[arg-type]

        alert_retries = {
            "retries": ALERT_RETRIES,
            "retry_delay": ALERT_RETRY_DELAY,
            "retry_backoff": ALERT_RETRY_BACKOFF,
            "context": True,
        }

        @huey.task(name="email_staff_alert", **alert_retries)
        def email_staff_alert(conversation_id: int, reason: str, urgent: bool, task: Any) -> None:
            _alert_attempt(
                "email",
                staff_alerts.deliver_email_alert,
                get_deps(),
                conversation_id,
                reason,
                urgent,
                task.retries,
            )

        @huey.task(name="post_staff_alert", **alert_retries)
        def post_staff_alert(conversation_id: int, reason: str, urgent: bool, task: Any) -> None:
            _alert_attempt(
                "chat",
                staff_alerts.deliver_chat_alert,
                get_deps(),
                conversation_id,
                reason,
                urgent,
                task.retries,
            )

        # Returns at once: the POST runs on the webhook sender threads, never holding a worker.
        @huey.task(name="deliver_webhook")
        def deliver_webhook(delivery_id: int) -> None:
            webhooks.dispatch(get_deps(), delivery_id)

        @huey.task(name="sync_calendar")
        def sync_calendar(sync_id: int) -> None:
            calendar_sync.sync(get_deps(), sync_id)

        @huey.task(name="send_reminder", retries=3, retry_delay=5)
        def send_reminder(reminder_id: int) -> None:
            reminders.send(get_deps(), reminder_id)

        self._send_reminder = send_reminder
        self._handle_event = handle_event
        self._deliver_sms = deliver_sms
        self._reconcile_sms = reconcile_sms
        self._conversation_timer = conversation_timer
        self._email_staff_alert = email_staff_alert
        self._post_staff_alert = post_staff_alert
        self._deliver_webhook = deliver_webhook
        self._sync_calendar = sync_calendar

    def _at(self, task: Any, args: tuple[Any, ...], at: datetime | None) -> None:
        # Delays are measured on the domain's clock, so a test clock schedules correctly.
        delay = 0.0 if at is None else (at - self._clock()).total_seconds()
        try:
            if delay <= 0:
                task(*args)
            else:
                task.schedule(args=args, delay=delay)
        except Exception as exc:
            raise EnqueueFailed(task.name, type(exc).__name__) from exc
        if delay <= 0:
            bell = jobs.doorbell(self.huey)
            if bell is not None:
                bell.ring()

    def handle_event(self, event_id: int) -> None:
        self._at(self._handle_event, (event_id,), None)

    def deliver_sms(self, message_id: int, at: datetime | None = None) -> None:
        self._at(self._deliver_sms, (message_id,), at)

    def reconcile_sms(self, message_id: int, claim: str, at: datetime | None = None) -> None:
        self._at(self._reconcile_sms, (message_id, claim), at)

    def conversation_timer(self, conversation_id: int, kind: str, at: datetime) -> None:
        self._at(self._conversation_timer, (conversation_id, kind), at)

    def email_staff_alert(self, conversation_id: int, reason: str, urgent: bool) -> None:
        self._at(self._email_staff_alert, (conversation_id, reason, urgent), None)

    def post_staff_alert(self, conversation_id: int, reason: str, urgent: bool) -> None:
        self._at(self._post_staff_alert, (conversation_id, reason, urgent), None)

    def deliver_webhook(self, delivery_id: int, at: datetime | None = None) -> None:
        self._at(self._deliver_webhook, (delivery_id,), at)

    def sync_calendar(self, sync_id: int, at: datetime | None = None) -> None:
        self._at(self._sync_calendar, (sync_id,), at)

    def send_reminder(self, reminder_id: int) -> None:
        self._at(self._send_reminder, (reminder_id,), None)


def _alert_attempt(
    channel: str,
    deliver: Callable[[Deps, int, str, bool], None],
    deps: Deps,
    conversation_id: int,
    reason: str,
    urgent: bool,
    retries_left: int,
) -> None:
    """One try at a staff alert. A retryable failure is raised again so huey retries it
    after a growing delay; a permanent one, or the last, is logged and dropped."""
    fields = {"channel": channel, "conversation_id": conversation_id, "urgent": urgent}
    try:
        deliver(deps, conversation_id, reason, urgent)
    except AlertDeliveryFailed as exc:
        if exc.retry and retries_left > 0:
            log_event(
                log,
                "staff_alert.retrying",
                logging.WARNING,
                detail=exc.detail,
                retries_left=retries_left,
                **fields,
            )
            raise
        event = "staff_alert.gave_up" if exc.retry else "staff_alert.refused"
        log_event(log, event, logging.ERROR, detail=exc.detail, **fields)


SWEEP_LOCK = "ringback-sweep"
# A worker sweeps when it starts, then this often; every SWEEP_BUSY_SECONDS while the last
# sweep found work or the queue would not take it; and as a claim's lease lapses.
SWEEP_IDLE_SECONDS = 5.0
SWEEP_BUSY_SECONDS = 1.0


def run_sweep(deps: Deps) -> dict[str, int]:
    """Re-drive everything a lost job or a dead worker could have left: events, due texts,
    unsettled sends, timers, webhooks, calendar syncs, lapsed holds.

    One sweep at a time across every process (``{"skipped": 1}`` when another is running):
    a PostgreSQL advisory lock, or a file lock beside the SQLite database. Each row it
    re-drives is also claimed on its own, so even two sweeps together hand nothing out twice.
    """
    engine = deps.sessions.kw["bind"]
    with single_flight(engine, SWEEP_LOCK) as ours:
        if not ours:
            return {"skipped": 1}
        return _sweep(deps)


def _sweep(deps: Deps) -> dict[str, int]:
    counts: dict[str, int] = {}
    stale_events = events.take_unhandled(deps)
    for index, event_id in enumerate(stale_events):
        try:
            deps.jobs.handle_event(event_id)
        except EnqueueFailed:
            events.give_back(deps, stale_events[index:])
            counts["unqueued"] = len(stale_events) - index
            log_event(
                log, "sweep.queue_unavailable", logging.WARNING, events_left=counts["unqueued"]
            )
            return {"due": 0, "stuck": 0, "events": index, **counts}
    counts.update(outbox.sweep(deps))
    counts["events"] = len(stale_events)
    if counts.get("unqueued"):
        return counts
    timers = conversation_service.due_timers(deps)
    for conversation_id, kind in timers:
        deps.jobs.conversation_timer(conversation_id, kind, deps.clock())
    counts["timers"] = len(timers)
    counts.update(webhooks.sweep(deps))
    booking_systems_module.reload_credentials(deps)
    counts.update(calendar_sync.sweep(deps))
    counts.update(system_changes.sweep(deps))
    counts.update(booking_service.expire_lapsed_holds(deps))
    counts.update(reminders.sweep(deps))
    counts.update(waitlist.sweep(deps))
    counts.update(follow_ups.sweep(deps))
    if any(counts.values()):
        log_event(log, "sweep.redriven", **counts)
    return counts


class Sweeper:
    """Runs :func:`run_sweep` in a worker process, on a thread of its own.

    It sweeps at once on start (a worker starting after an outage or a crash picks up what
    was left at once), then every :data:`SWEEP_IDLE_SECONDS`, every
    :data:`SWEEP_BUSY_SECONDS` while there is a backlog (the last sweep re-drove something,
    or the queue would not take it), and when the soonest claim's lease lapses, so a text
    whose worker died is taken over the moment it may be.
    """

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sweeper:
        self._thread = threading.Thread(target=self._run, name="ringback-sweeper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self.sweep_once()

    def sweep_once(self) -> float:
        """Sweep; return how long to wait before the next one."""
        try:
            counts = run_sweep(self.deps)
            lapse = outbox.next_lapse(self.deps)
        except Exception:
            log.exception("sweep.failed")
            return SWEEP_BUSY_SECONDS
        busy = any(value for key, value in counts.items() if key != "skipped")
        delay = SWEEP_BUSY_SECONDS if busy else SWEEP_IDLE_SECONDS
        if lapse is not None:
            until = (lapse - self.deps.clock()).total_seconds() + 0.05
            delay = max(min(delay, until), 0.05)
        return delay


@dataclass
class Runtime:
    settings: Settings
    locations: Locations
    engine: Engine
    huey: Huey
    jobs: HueyJobs
    deps: Deps
    closers: list[Callable[[], None]] = field(default_factory=list)
    # Swaps in settings saved in the database (a version check per request and per job).
    settings_watcher: SettingsWatcher | None = None

    @property
    def embedded_queue(self) -> bool:
        return jobs.is_embedded(self.huey)

    def close(self) -> None:
        for closer in self.closers:
            closer()
        if self.settings_watcher is not None:
            self.settings_watcher.close()
        self.engine.dispose()


def build_runtime(
    settings: Settings,
    locations: Locations,
    *,
    sms: SmsSender | None = None,
    lookup: CallerLookup | None = None,
    clock: Callable[[], datetime] = _now,
    emailer: AlertEmailer | None = None,
    chat: ChatWebhook | None = None,
    calendars: CalendarFactory | None = None,
    booking_systems: BookingSystemFactory | None = None,
) -> Runtime:
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    huey = jobs.build_huey(settings.resolved_queue_url, settings.queue_name)
    closers: list[Callable[[], None]] = []
    if sms is None or lookup is None:
        # Twilio, plus SignalWire when a location uses it (texts routed by location).
        telephony = build_telephony(settings, locations)
        closers.extend(telephony.closers)
        sms = sms or telephony.sms
        lookup = lookup or telephony.lookup
    smtp_server = settings.smtp_server
    if emailer is None and smtp_server is not None:
        emailer = SmtpEmailer(
            smtp_server, settings.alert_from, timeout=settings.send_timeout_seconds
        )
    if chat is None and any(location.slack_webhook_url for location in locations):
        webhook = HttpChatWebhook(timeout=settings.send_timeout_seconds)
        closers.append(webhook.close)
        chat = webhook
    link_secret = settings.link_secret()
    # Always there: a location switched to Google Calendar or Square in the settings pages
    # books into it without a restart (each use is gated by the location's booking_system).
    if booking_systems is None:
        booking_systems = booking_systems_module.OpenBookingSystems(
            settings, sessions, link_secret, clock
        )
    holder: dict[str, Deps] = {}
    watcher = SettingsWatcher(engine, locations)

    def fresh_deps() -> Deps:
        # Every job starts by checking the settings' version, so a change saved in the
        # settings pages reaches a running worker without a restart.
        watcher.refresh()
        return holder["deps"]

    # The jobs read fresh settings when they run; scheduling one needs only the clock.
    job_scheduler = HueyJobs(huey, fresh_deps, clock)
    deps = Deps(
        locations=locations,
        sessions=sessions,
        sms=sms,
        lookup=lookup,
        jobs=job_scheduler,
        public_url=settings.public_url,
        clock=clock,
        send_timeout_seconds=settings.send_timeout_seconds,
        emailer=emailer,
        chat=chat,
        calendars=calendars or calendar_sync.caldav_calendars(settings.send_timeout_seconds),
        link_secret=link_secret,
        booking_systems=booking_systems,
        allow_private_webhooks=settings.allow_private_webhooks,
    )
    holder["deps"] = deps
    return Runtime(
        settings=settings,
        locations=locations,
        engine=engine,
        huey=huey,
        jobs=job_scheduler,
        deps=deps,
        closers=closers,
        settings_watcher=watcher,
    )


def build_spool(runtime: Runtime) -> SpoolService | None:
    """This process's webhook spool and drainer (README, Deployment), not yet started;
    None when ``RINGBACK_SPOOL_MAX_MB`` is 0."""
    settings = runtime.settings
    if settings.spool_max_mb <= 0:
        return None
    return SpoolService(
        runtime.deps,
        settings.resolved_database_url,
        settings.resolved_spool_dir,
        int(settings.spool_max_mb * 1024 * 1024),
        settings.store_budget_seconds,
    )

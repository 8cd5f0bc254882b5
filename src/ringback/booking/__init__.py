"""Scheduling: availability, slot offers, holds and bookings, calendar sync, booking page.

* :mod:`availability` is pure: which slots a provider (and a room) can take, in the
  location's zone, given busy time. No database, no clock of its own.
* :mod:`service` reads busy time, offers slots, books exactly one appointment per slot
  under concurrency, confirms, cancels and reschedules, and queues calendar writes.
* :mod:`calendar_sync` keeps outside calendars (CalDAV) in step and reads their busy time.
* :mod:`links` signs the expiring links texted to patients and behind the ICS feeds.

No web framework here: the booking page is :mod:`ringback.booking.pages`, the ICS feeds
and the staff calendar page :mod:`ringback.booking.feeds`, the CLI
:mod:`ringback.booking.cli`.
"""

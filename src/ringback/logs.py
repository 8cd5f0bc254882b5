"""Structured logs: one JSON object per line, event names dotted (``textback.sent``).

Privacy: message bodies and full phone numbers never go to INFO. Pass numbers through
:func:`ringback.phones.redact`; bodies are not logged at all.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless debugging.
    for name in ("huey", "huey.consumer", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(name).setLevel("DEBUG" if level == "DEBUG" else "WARNING")


def log_event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log the dotted event ``name`` with structured ``fields`` (no bodies, redacted numbers)."""
    logger.log(level, name, extra={"fields": fields})

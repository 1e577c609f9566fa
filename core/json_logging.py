"""Production logs: one JSON object per line, so a log shipper can index fields instead of parsing prose."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from core.request_id import current_request_id

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is worth keeping.
_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id`` while a request or task is
    handled, ``exception`` (the traceback text) when one is attached, and the record's ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in record.__dict__.items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_") and name not in entry:
                entry[name] = value
        # default=str: an extra that is not JSON (a datetime, a model) is written as its text, never lost.
        return json.dumps(entry, default=str, ensure_ascii=False)

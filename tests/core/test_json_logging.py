"""Production logs are one JSON object per line, with the request's id on every line written while it is handled."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from django.http import HttpResponse
from django.test import RequestFactory

from core.json_logging import JsonFormatter
from core.request_id import REQUEST_ID_HEADER, RequestIdMiddleware, bind_request_id, unbind_request_id

ROOT = Path(__file__).resolve().parents[2]


def captured_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_time_level_logger_and_message():
    logger, stream = captured_logger("rollgate.test.plain")
    logger.warning("Release %s paused:\nguardrail %s", 7, "csat")
    [entry] = lines(stream)  # the newline in the message stays inside the one line
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "rollgate.test.plain"
    assert entry["message"] == "Release 7 paused:\nguardrail csat"
    assert datetime.fromisoformat(entry["time"]).tzinfo == UTC
    assert "request_id" not in entry and "exception" not in entry


def test_the_exception_text_and_extra_fields_are_kept():
    logger, stream = captured_logger("rollgate.test.errors")
    try:
        raise ValueError("bad window")
    except ValueError:
        logger.exception("Ingest failed", extra={"rows": 3, "received": datetime(2026, 1, 2, tzinfo=UTC)})
    [entry] = lines(stream)
    assert entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad window" in entry["exception"]
    assert entry["rows"] == 3
    assert entry["received"] == "2026-01-02 00:00:00+00:00"  # not JSON-native: written as text, not dropped


def test_the_bound_request_id_is_on_every_line():
    logger, stream = captured_logger("rollgate.test.bound")
    token = bind_request_id("req-42")
    try:
        logger.info("inside")
    finally:
        unbind_request_id(token)
    logger.info("outside")
    inside, outside = lines(stream)
    assert inside["request_id"] == "req-42"
    assert "request_id" not in outside


def test_the_middleware_keeps_a_proxy_id_replaces_a_bad_one_and_returns_it():
    logger, stream = captured_logger("rollgate.test.request")

    def view(request):
        logger.info("handling")
        return HttpResponse("ok")

    middleware = RequestIdMiddleware(view)
    kept = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID="lb-1a2b3c"))
    replaced = middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID='x"}\n{"level":"CRITICAL'))
    fresh = middleware(RequestFactory().get("/"))

    assert kept[REQUEST_ID_HEADER] == "lb-1a2b3c"
    assert len(replaced[REQUEST_ID_HEADER]) == 32 and "CRITICAL" not in replaced[REQUEST_ID_HEADER]
    assert fresh[REQUEST_ID_HEADER] != replaced[REQUEST_ID_HEADER]
    assert [entry["request_id"] for entry in lines(stream)] == [
        kept[REQUEST_ID_HEADER],
        replaced[REQUEST_ID_HEADER],
        fresh[REQUEST_ID_HEADER],
    ]


def test_production_settings_write_json_lines():
    code = "import django, logging; django.setup(); logging.getLogger('rollgate.check').error('from production')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": "x" * 60,
            "DATABASE_URL": "postgres://u@db.example:5432/rollgate",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "rollgate.check", "from production")

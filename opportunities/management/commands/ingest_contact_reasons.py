"""``manage.py ingest_contact_reasons FILE.csv``: the API's contact-reason ingestion for a file, all or nothing."""

from __future__ import annotations

import csv
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from monitoring.errors import InvalidRows
from opportunities.ingestion import MAX_ROWS, upsert_volumes, validate_volumes

COLUMNS = (
    "contact_reason",
    "market",
    "audience",
    "window_start",
    "window_end",
    "conversations",
    "handed_to_human",
    "abandoned",
)
TEXT_COLUMNS = {"contact_reason", "market", "audience", "arm", "source", "solution", "window_start", "window_end"}


def _cell(value: str) -> Any:
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)  # "nan" and "inf" parse here and are refused by validation like any other
    except ValueError:
        return text


def _row(raw: dict[str, str | None]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in raw.items():
        if not key or value is None or not value.strip():
            continue  # an empty optional cell means "not sent", as in JSON
        row[key] = value.strip() if key in TEXT_COLUMNS else _cell(value)
    return row


class Command(BaseCommand):
    help = (
        "Upsert contact-reason volumes from a CSV with columns contact_reason, market, audience, window_start, "
        "window_end, conversations, handed_to_human, abandoned, avg_handle_minutes, and optionally csat_responses, "
        "csat_positive, solution, arm, source. All rows or none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with open(options["file"], newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise CommandError(f"Missing column(s): {', '.join(missing)}")
                rows = [_row(raw) for raw in reader]
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        validated = []
        problems: list[str] = []
        for start in range(0, len(rows), MAX_ROWS):
            try:
                validated.append(validate_volumes(rows[start : start + MAX_ROWS]))
            except InvalidRows as exc:
                # +2: the header is line 1 and rows count from 0.
                problems += [f"line {start + bad['index'] + 2}: {bad['errors']}" for bad in exc.rows]
        if problems:
            raise CommandError(f"{len(problems)} invalid row(s); nothing was written.\n" + "\n".join(problems[:200]))
        with transaction.atomic():
            for volumes in validated:
                upsert_volumes(volumes)
        self.stdout.write(self.style.SUCCESS(f"Stored {len(rows)} contact-reason row(s)."))

"""``manage.py ingest_contact_reasons FILE.csv``: the API's contact-reason ingestion for a file, all or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.bulk_input import read_csv_rows
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


class Command(BaseCommand):
    help = (
        "Upsert contact-reason volumes from a CSV with columns contact_reason, market, audience, window_start, "
        "window_end, conversations, handed_to_human, abandoned, avg_handle_minutes, and optionally csat_responses, "
        "csat_positive, solution, arm, source. All rows or none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = read_csv_rows(options["file"], required=COLUMNS, text_columns=TEXT_COLUMNS)
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

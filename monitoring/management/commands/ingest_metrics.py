"""``manage.py ingest_metrics FILE.csv``: the API's ingestion for a file, all or nothing, with a progress bar."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from tqdm import tqdm

from core.bulk_input import read_csv_rows
from monitoring.errors import InvalidRows
from monitoring.services.ingestion import MAX_ROWS, enqueue_evaluation, upsert_samples, validate_rows

COLUMNS = ("release", "metric", "market", "window_start", "window_end")
TEXT_COLUMNS = {"metric", "market", "arm", "source", "window_start", "window_end"}


class Command(BaseCommand):
    help = (
        "Upsert metric samples from a CSV with columns release, metric, market, window_start, window_end, "
        "numerator, denominator (rates) or value (gauges), and optionally arm and source. All rows or none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--no-enqueue", action="store_true", help="Do not queue an evaluation afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = read_csv_rows(options["file"], required=COLUMNS, text_columns=TEXT_COLUMNS)
        chunks = [rows[start : start + MAX_ROWS] for start in range(0, len(rows), MAX_ROWS)]
        validated = []
        problems: list[str] = []
        for number, chunk in enumerate(tqdm(chunks, desc="validate", unit="chunk", disable=not chunks)):
            try:
                validated.append(validate_rows(chunk))
            except InvalidRows as exc:
                for bad in exc.rows:
                    # +2: the header is line 1 and rows count from 0.
                    problems.append(f"line {number * MAX_ROWS + bad['index'] + 2}: {bad['errors']}")
        if problems:
            raise CommandError(f"{len(problems)} invalid row(s); nothing was written.\n" + "\n".join(problems[:200]))

        release_ids: set[int] = set()
        with (
            transaction.atomic(),
            tqdm(total=len(rows), desc="upsert", unit="row", disable=not rows) as progress,
        ):
            for samples in validated:
                upsert_samples(samples)
                release_ids.update(samples.release_ids)
                progress.update(len(samples))
            if release_ids and not options["no_enqueue"]:
                ids = sorted(release_ids)
                transaction.on_commit(lambda: enqueue_evaluation(ids))
        self.stdout.write(self.style.SUCCESS(f"Stored {len(rows)} sample(s) for {len(release_ids)} release(s)."))

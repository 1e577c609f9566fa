"""Ingest N metric samples through the service (validation + one upsert per 10,000 rows) and compare with a raw
PostgreSQL COPY of the same rows into the same table, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate python benchmarks/bench_ingest.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import timedelta

from _monitoring_setup import bench_database, make_live_releases


def _rows(releases, metric_keys, total, start):
    rows = []
    index = 0
    while len(rows) < total:
        release = releases[index % len(releases)]
        metric = metric_keys[(index // len(releases)) % len(metric_keys)]
        slot = index // (len(releases) * len(metric_keys))
        for market in release.markets:
            rows.append(
                {
                    "release": release.pk,
                    "metric": metric,
                    "market": market,
                    "window_start": (start + timedelta(minutes=5 * slot)).isoformat(),
                    "window_end": (start + timedelta(minutes=5 * slot + 5)).isoformat(),
                    "numerator": index % 97,
                    "denominator": 1000,
                }
            )
        index += 1
    return rows[:total]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    with bench_database("bench_ingest"):
        from django.db import connection
        from django.utils import timezone

        from monitoring.models import MetricDefinition, MetricSample
        from monitoring.services.ingestion import MAX_ROWS, metric_samples_ingest

        releases = make_live_releases(20)
        metrics = {m.key: m for m in MetricDefinition.objects.filter(kind="rate")}
        start = timezone.now() - timedelta(days=60)
        rows = _rows(releases, sorted(metrics), args.rows, start)

        began = time.perf_counter()
        for offset in range(0, len(rows), MAX_ROWS):
            metric_samples_ingest(rows=rows[offset : offset + MAX_ROWS], enqueue=False)
        service_seconds = time.perf_counter() - began
        assert MetricSample.objects.count() == len(rows)

        # Baseline: the same rows, already parsed, streamed with COPY into the same table (another source, so no
        # conflicts) — what PostgreSQL itself can take in, with no validation and no upsert.
        now = timezone.now().isoformat()
        buffer = io.StringIO()
        for row in rows:
            buffer.write(
                f"copy\t{row['release']}\t{metrics[row['metric']].pk}\t1\t{row['market']}\ttreatment\t"
                f"{row['window_start']}\t{row['window_end']}\t{row['numerator']}\t{row['denominator']}\t{now}\n"
            )
        payload = buffer.getvalue()
        began = time.perf_counter()
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY monitoring_metricsample (source, release_id, metric_id, metric_version, market, arm, "
                "window_start, window_end, numerator, denominator, received_at) FROM STDIN"
            ) as copy,
        ):
            copy.write(payload)
        copy_seconds = time.perf_counter() - began
        assert MetricSample.objects.count() == 2 * len(rows)

        # Idempotence costs: re-sending every row updates in place.
        began = time.perf_counter()
        for offset in range(0, len(rows), MAX_ROWS):
            metric_samples_ingest(rows=rows[offset : offset + MAX_ROWS], enqueue=False)
        resend_seconds = time.perf_counter() - began

    rate = len(rows) / service_seconds
    print(f"ingest {len(rows)} rows via metric_samples_ingest: {service_seconds:.3f} s ({rate:,.0f} rows/s)")
    print(f"re-send (upsert updates) of the same rows:      {resend_seconds:.3f} s")
    print(f"baseline raw COPY of the same rows: {copy_seconds:.3f} s ({len(rows) / copy_seconds:,.0f} rows/s)")
    print(f"ratio service / COPY: {service_seconds / copy_seconds:.1f}x")


if __name__ == "__main__":
    main()

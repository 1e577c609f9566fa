"""One guardrail evaluation cycle over many live releases versus the plain SQL aggregate it rests on.

DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate python benchmarks/bench_evaluate.py [--releases 200]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from _monitoring_setup import bench_database, make_live_releases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--windows", type=int, default=24, help="hourly sample windows per release/metric/market")
    args = parser.parse_args()
    with bench_database("bench_evaluate"):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from monitoring.models import Evaluation, Guardrail, MetricDefinition, MetricSample
        from monitoring.services import guardrails_evaluate
        from monitoring.services.ingestion import upsert_samples

        Guardrail.objects.filter(scope="risk_level").delete()
        releases = make_live_releases(args.releases)
        metrics = {m.key: m for m in MetricDefinition.objects.filter(key__in=["error_rate", "fallback_rate"])}
        for release in releases:
            for metric in metrics.values():
                Guardrail.objects.create(
                    name=f"{metric.key} cap",
                    metric=metric,
                    scope="release",
                    release=release,
                    absolute_threshold=0.08,
                    min_sample_size=500,
                )
        now = timezone.now()
        start = (now - timedelta(hours=args.windows + 1)).replace(minute=0, second=0, microsecond=0)
        samples = [
            MetricSample(
                source="bench",
                release=release,
                metric=metric,
                metric_version=1,
                market=market,
                arm=arm,
                window_start=start + timedelta(hours=hour),
                window_end=start + timedelta(hours=hour + 1),
                numerator=(hour * 7) % 60,
                denominator=1000,
                received_at=now,
            )
            for release in releases
            for metric in metrics.values()
            for market in release.markets
            for arm in ("treatment", "control")
            for hour in range(args.windows)
        ]
        for offset in range(0, len(samples), 10_000):
            upsert_samples(samples[offset : offset + 10_000])
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE monitoring_metricsample")

        keys = sum(len(r.markets) for r in releases) * len(metrics)
        with CaptureQueriesContext(connection) as queries:
            began = time.perf_counter()
            result = guardrails_evaluate(now=now)
            cycle_seconds = time.perf_counter() - began
        assert result.evaluations == keys == Evaluation.objects.count()

        began = time.perf_counter()
        again = guardrails_evaluate(now=now)  # the same window: nothing to write
        rerun_seconds = time.perf_counter() - began
        assert again.evaluations == 0

        window_start = (now - timedelta(hours=24)).replace(second=0, microsecond=0)
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT release_id, metric_id, market, arm, SUM(numerator), SUM(denominator) "
                "FROM monitoring_metricsample WHERE window_start >= %s AND window_end <= %s "
                "GROUP BY release_id, metric_id, market, arm",
                [window_start, now],
            )
            groups = len(cursor.fetchall())
        sql_seconds = time.perf_counter() - began

    print(
        f"evaluation cycle: {len(releases)} releases, {keys} (guardrail, release, market) keys, "
        f"{len(samples)} samples: {cycle_seconds:.3f} s in {len(queries.captured_queries)} queries"
    )
    sql_time = sum(float(q["time"]) for q in queries.captured_queries)
    print(f"  of which SQL: {sql_time:.3f} s; slowest: {max(float(q['time']) for q in queries.captured_queries):.3f} s")
    print(f"re-run of the same window (idempotent, writes nothing): {rerun_seconds:.3f} s")
    print(f"baseline plain SQL aggregate ({groups} groups): {sql_seconds:.3f} s")
    print(f"ratio cycle / aggregate: {cycle_seconds / sql_seconds:.1f}x")


if __name__ == "__main__":
    main()

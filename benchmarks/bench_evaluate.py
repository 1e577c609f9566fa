"""One guardrail evaluation cycle at scale versus the plain SQL aggregate it rests on, and the same cycle fanned out
to 1 and 2 real Celery workers.

Full scale (``BENCH_SCALE=1``): 10,000 live releases × 6 guardrails × 3 markets on ~1,080,000 samples, and the same
at a tenth (1,000 releases) to show the queries do not grow with releases. The baseline is the GROUP BY of the same
cohorts (source of record, matured, current phase) in plain SQL, timed in the same run on the same database.

DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate python benchmarks/bench_evaluate.py [--profile] [--no-workers]
``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/14) is the broker of the worker runs; each run has its own queue.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
import uuid
from typing import Any

from _monitoring_setup import bench_database, bulk_live_fleet
from _results import record, scaled
from _worker import celery_worker

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# The GROUP BY the evaluation rests on: every cohort (release, metric, market, arm) of the current phase, from the
# metric's source of record, matured — the sums, counts and maxima the looks are judged and identified by.
COHORT_AGGREGATE_SQL = """
SELECT s.release_id, s.metric_id, s.market, s.arm, SUM(s.numerator), SUM(s.denominator), COUNT(*), SUM(s.units),
       SUM(s.sum_x), SUM(s.sum_y), SUM(s.sum_xx), SUM(s.sum_yy), SUM(s.sum_xy), COUNT(s.units),
       MAX(s.received_at), MAX(s.window_end)
FROM monitoring_metricsample AS s
JOIN monitoring_metricdefinition AS m ON m.id = s.metric_id AND s.source = m.source_of_record
JOIN releases_release AS r ON r.id = s.release_id
WHERE r.status IN ('rolling_out', 'paused', 'launched', 'verifying')
  AND s.window_start >= CASE WHEN r.status = 'verifying' THEN r.verification_started_at
                             ELSE COALESCE(r.stage_started_at, r.created_at) END
  AND s.window_end + m.maturation_period <= %s
GROUP BY s.release_id, s.metric_id, s.market, s.arm
"""


def sql_baseline(now: Any) -> tuple[float, int]:
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(COHORT_AGGREGATE_SQL, [now])
        groups = len(cursor.fetchall())
    return time.perf_counter() - began, groups


def cycle(releases: int, *, profile: bool) -> dict[str, Any]:
    """Build ``releases`` in a fresh database, then time one cycle (queries captured), the re-run of the same
    window, and the plain SQL aggregate, best of two for the baseline (the first pays the cold cache)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from monitoring.models import Evaluation
    from monitoring.services import guardrails_evaluate

    began = time.perf_counter()
    counts = bulk_live_fleet(releases)  # a clean fleet: incidents cost their own queries, per incident
    print(f"  fixture ({counts}): {time.perf_counter() - began:.1f} s")
    now = timezone.now()
    sql_seconds, groups = min(sql_baseline(now), sql_baseline(now))
    profiler = cProfile.Profile() if profile else None
    connection.queries_log.clear()  # a full log (its deque holds 9,000) would make the capture read 0
    with CaptureQueriesContext(connection) as queries:
        if profiler:
            profiler.enable()
        began = time.perf_counter()
        result = guardrails_evaluate(now=now)
        cycle_seconds = time.perf_counter() - began
        if profiler:
            profiler.disable()
    looks = counts["guardrails"] * 3
    assert result.evaluations == looks == Evaluation.objects.count(), (result.evaluations, looks)
    began = time.perf_counter()
    again = guardrails_evaluate(now=now)  # the same window: nothing to write
    rerun_seconds = time.perf_counter() - began
    assert again.evaluations == 0
    sql_in_cycle = sum(float(q["time"]) for q in queries.captured_queries)
    print(
        f"  cycle: {releases} releases, {looks} looks, {counts['samples']} samples: {cycle_seconds:.3f} s in "
        f"{len(queries.captured_queries)} queries (of which SQL {sql_in_cycle:.3f} s); "
        f"{result.incidents_opened} incidents opened"
    )
    print(f"  baseline plain SQL aggregate of the same cohorts ({groups} groups): {sql_seconds:.3f} s")
    print(f"  ratio cycle / aggregate: {cycle_seconds / sql_seconds:.2f}x")
    print(f"  re-run of the same window (writes nothing): {rerun_seconds:.3f} s")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
        print(out.getvalue())
    return {
        "cycle_s": cycle_seconds,
        "sql_s": sql_seconds,
        "queries": len(queries.captured_queries),
        "rerun_s": rerun_seconds,
        "looks": looks,
        "samples": counts["samples"],
        "now": now,
    }


def _retire_fleet() -> None:
    """Take the small fleet out of the live states (and its looks away), so the large cycle and its baseline see
    only the large fleet: one database, since Django is set up once per process."""
    from releases.models import Release

    _reset_looks()
    Release.objects.filter(status="rolling_out").update(status="rolled_back")


def _reset_looks() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_incidentevent")
        cursor.execute("DELETE FROM monitoring_incident")
        cursor.execute("DELETE FROM monitoring_evaluation")


def with_workers(workers: int, expected: int) -> float:
    """The beat task's real fan-out (``evaluate_guardrails_cycle`` enqueues one ``evaluate_releases`` task per
    BATCH_SIZE releases) drained by ``workers`` Celery worker processes (solo pool each) on Redis, on this run's own
    queue: seconds from the fan-out to the last evaluation written."""
    from monitoring.models import Evaluation
    from monitoring.tasks import evaluate_guardrails_cycle

    with celery_worker(run_id=uuid.uuid4().hex[:12], redis_url=REDIS_URL, count=workers):
        began = time.perf_counter()
        evaluate_guardrails_cycle()
        deadline = time.monotonic() + 1800
        while Evaluation.objects.count() < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{Evaluation.objects.count()} of {expected} evaluations after 30 minutes")
            time.sleep(0.1)
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true", help="print the cProfile of the large cycle")
    parser.add_argument("--no-workers", action="store_true", help="skip the 1- and 2-worker runs")
    args = parser.parse_args()
    small, large = scaled(1_000, minimum=5), scaled(10_000, minimum=20)
    print(f"evaluation: {small} and {large} live releases × 6 guardrails × 3 markets")
    figures: dict[str, Any] = {}
    with bench_database("bench_evaluate"):
        at_small = cycle(small, profile=False)
        _retire_fleet()
        at_large = cycle(large, profile=args.profile)
        if not args.no_workers:
            timings = {}
            for workers in (1, 2):
                _reset_looks()
                timings[workers] = with_workers(workers, at_large["looks"])
                print(f"  fan-out to {workers} Celery worker(s) on Redis: {timings[workers]:.2f} s")
            speedup = timings[1] / timings[2]
            print(
                f"  speed-up 2 workers vs 1: {speedup:.2f}x on {os.cpu_count()} cores shared with PostgreSQL "
                f"(in-process cycle of the same releases: {at_large['cycle_s']:.2f} s)"
            )
            figures.update(
                evaluation_workers_1_s=round(timings[1], 3),
                evaluation_workers_2_s=round(timings[2], 3),
                evaluation_speedup_2_workers=round(speedup, 3),
            )
    ratio = at_large["cycle_s"] / at_large["sql_s"]
    print(
        f"queries per cycle: {at_small['queries']} at {small} releases, {at_large['queries']} at {large} "
        f"(ratio {at_large['queries'] / at_small['queries']:.2f}x for {large / small:.0f}x the releases)"
    )
    print(f"evaluation_ratio_vs_sql: {ratio:.2f} (target ≤ 3)")
    figures.update(
        evaluation_ratio_vs_sql=round(ratio, 3),
        evaluation_queries_1k=at_small["queries"],
        evaluation_queries_10k=at_large["queries"],
        evaluation_cycle_s=round(at_large["cycle_s"], 3),
        evaluation_sql_baseline_s=round(at_large["sql_s"], 3),
        evaluation_rerun_s=round(at_large["rerun_s"], 3),
        evaluation_releases=large,
        evaluation_looks=at_large["looks"],
        evaluation_samples=at_large["samples"],
        evaluation_small_cycle_s=round(at_small["cycle_s"], 3),
        evaluation_small_sql_baseline_s=round(at_small["sql_s"], 3),
    )
    print(f"recorded in {record('evaluation', figures)}")


if __name__ == "__main__":
    main()

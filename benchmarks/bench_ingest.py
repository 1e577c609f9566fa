"""Metric samples over HTTP, as senders post them, against PostgreSQL's COPY of the same rows; then the breach →
incident latency while that load keeps running (issue 13, items 1 and 3).

* **Ingestion**: ``BENCH_SCALE`` × 10,000 live releases × 100 samples (10 five-minute windows × 5 rate metrics × 2
  markets: 1,000,000 rows at full scale) POSTed in 10,000-row requests to gunicorn with the production settings
  (DEBUG off; ``benchmarks/_server.py``), authenticated with a real API token of an On-call user, from
  ``BENCH_INGEST_SENDERS`` (default 4) concurrent connections — a fleet of senders, each posting its own batches.
  Then the same requests again (an unchanged re-send). Baseline, same run: the table emptied, then the same rows
  streamed by one psycopg COPY into the same table (no validation, no upsert, no HTTP, one stream).
* **Detection latency under load**: a real Celery worker on Redis (``BENCH_REDIS_URL``, default DB 13, a queue of
  this run's own); while the senders keep posting new windows, 20 trials (at full scale) each POST one breaching
  sample of a fresh release and wait for its incident. The load's releases carry no guardrails (their looks
  queue up in front of the breach's but cost little; evaluation at scale is ``bench_evaluate.py``'s figure).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate python benchmarks/bench_ingest.py [--profile]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import queue
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from _monitoring_setup import bench_database, bulk_live_release_ids, make_live_releases
from _results import SCALE, record, scaled
from _server import Client, gunicorn_server, make_api_user, obtain_token
from _worker import bench_queue, celery_worker
from bench_verdicts import breach_row, setup_guardrails, wait_incident

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SENDERS = int(os.environ.get("BENCH_INGEST_SENDERS", "4"))
RUN_ID = uuid.uuid4().hex[:12]
URL = "/api/v1/metric-samples/"
WINDOWS = 10
MARKETS = ("US", "DE")
BATCH_ROWS = 10_000
PASSWORD = "bench-" + uuid.uuid4().hex


def sample_rows(
    releases: list[int], metric_keys: list[str], windows: range, start: datetime, shift: int = 0
) -> Iterator[dict[str, Any]]:
    """Window after window, every release × metric × market: the order a sender's cycle produces them."""
    for window in windows:
        window_start = start + timedelta(minutes=5 * window)
        bounds = {
            "window_start": window_start.isoformat(),
            "window_end": (window_start + timedelta(minutes=5)).isoformat(),
        }
        for position, release in enumerate(releases):
            for metric_index, metric in enumerate(metric_keys):
                for market in MARKETS:
                    numerator = (position * 7 + window * 3 + metric_index + shift) % 97
                    yield {"release": release, "metric": metric, "market": market, "numerator": numerator,
                           "denominator": 1000, **bounds}  # fmt: skip


def batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def post_all(client: Client, bodies: list[bytes], senders: int) -> float:
    """POST every body from ``senders`` threads (each takes the next waiting body); seconds, first to last."""
    waiting: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        waiting.put(body)
    failures: list[str] = []

    def sender() -> None:
        while not failures:
            try:
                body = waiting.get_nowait()
            except queue.Empty:
                return
            status, content = client.post_json(URL, body)
            if status != 201:
                failures.append(f"{status}: {content[:500]!r}")

    began = time.perf_counter()
    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} ingest request(s) failed, first: {failures[0]}")
    return seconds


def copy_payload(rows: Iterator[dict[str, Any]], metric_ids: dict[str, int], received_at: str) -> list[str]:
    chunks, lines = [], []
    for row in rows:
        lines.append(
            f"api\t{row['release']}\t{metric_ids[row['metric']]}\t1\t{row['market']}\ttreatment\t"
            f"{row['window_start']}\t{row['window_end']}\t{row['numerator']}\t{row['denominator']}\t{received_at}\n"
        )
        if len(lines) == BATCH_ROWS:
            chunks.append("".join(lines))
            lines = []
    if lines:
        chunks.append("".join(lines))
    return chunks


def in_process_breakdown(body: bytes, profile: bool) -> dict[str, float]:
    """One batch through the endpoint's steps in this process (rolled back): where a request's time goes."""
    from django.db import transaction

    from monitoring.api.parsers import parsed_depth
    from monitoring.services.ingestion import upsert_samples, validate_rows

    timings: dict[str, float] = {}

    def timed(name: str, step: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        result = step()
        timings[name] = time.perf_counter() - began
        return result

    rows = timed("parse", lambda: orjson.loads(body))
    timed("depth", lambda: parsed_depth(rows, body))
    samples = timed("validate", lambda: validate_rows(rows))
    with transaction.atomic():
        timed("upsert", lambda: upsert_samples(samples))
        transaction.set_rollback(True)
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        with transaction.atomic():
            profiler.runcall(lambda: upsert_samples(validate_rows(orjson.loads(body))))
            transaction.set_rollback(True)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return timings


def breach_latency(
    client: Client, releases: list[int], metric_keys: list[str], start: datetime, trials: int, *, load: bool
) -> tuple[list[float], float]:
    """Breach → incident over ``trials`` fresh releases, with (``load``) ``SENDERS`` threads posting new windows
    meanwhile, or without; the load's rows per second."""
    from monitoring.models import Incident
    from releases.models import Release

    stop = threading.Event()
    posted = [0]
    failures: list[str] = []
    # New windows after the ones already sent, up to the last that has ended: a window ending in the future is
    # refused. A tiny run gets through the two days of them within its trials; it then sends them again (the
    # re-send path), so the load never stops and never fails.
    ended = int((datetime.now(UTC) - start) / timedelta(minutes=5)) - 1
    next_window = itertools.cycle(range(WINDOWS, ended))
    window_lock = threading.Lock()

    def sender() -> None:
        while not stop.is_set():
            with window_lock:
                window = next(next_window)
            for batch in batches(sample_rows(releases, metric_keys, range(window, window + 1), start, shift=1)):
                if stop.is_set():
                    return
                status, content = client.post_json(URL, orjson.dumps(batch))
                if status != 201:
                    failures.append(f"{status}: {content[:300]!r}")
                    return
                posted[0] += len(batch)

    trial_releases = make_live_releases(trials + 1, markets=("US",))
    setup_guardrails(trial_releases, "error_rate", absolute_threshold=0.05, min_sample_size=100)
    phase_start = datetime.fromtimestamp((time.time() // 3600 - 3) * 3600, tz=UTC)
    Release.objects.filter(pk__in=[r.pk for r in trial_releases]).update(stage_started_at=phase_start)
    timings: list[float] = []
    threads = [threading.Thread(target=sender) for _ in range(SENDERS if load else 0)]
    began_load = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        for index, release in enumerate(trial_releases):
            time.sleep(0.5)  # the load is flowing before each breach is sent
            began = time.time()
            status, content = client.post_json(
                URL, orjson.dumps([breach_row(release, phase_start + timedelta(hours=1))])
            )
            if status != 201:
                raise RuntimeError(f"breach POST answered {status}: {content[:500]!r}")
            opened = wait_incident(release.pk, 60 if index == 0 else 30)
            if index:  # the first warms the worker up (imports, connections)
                timings.append(opened - began if opened else math.inf)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    load_seconds = time.perf_counter() - began_load
    if failures:
        raise RuntimeError(f"load request failed: {failures[0]}")
    assert Incident.objects.filter(release_id__in=[r.pk for r in trial_releases]).count() >= len(timings)
    return timings, posted[0] / load_seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true", help="cProfile one batch of validation + upsert")
    args = parser.parse_args()
    release_count, trials = scaled(10_000, minimum=10), max(2, scaled(20))
    with bench_database(f"bench_ingest_{RUN_ID}"):
        import redis
        from django.db import connection
        from django.utils import timezone

        from core.roles import ON_CALL
        from monitoring.models import Guardrail, MetricDefinition, MetricSample

        # The seeded per-risk-level defaults would make every load release a guardrail look (see the docstring).
        Guardrail.objects.filter(scope="risk_level").delete()
        metrics = list(MetricDefinition.objects.filter(kind="rate").order_by("key")[:5])
        metric_keys, metric_ids = [m.key for m in metrics], {m.key: m.pk for m in metrics}
        releases = bulk_live_release_ids(release_count, MARKETS)
        start = (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        bodies = [orjson.dumps(b) for b in batches(sample_rows(releases, metric_keys, range(WINDOWS), start))]
        total = len(releases) * len(metric_keys) * len(MARKETS) * WINDOWS
        make_api_user("bench.sender", ON_CALL, PASSWORD)
        print(
            f"bench_ingest (BENCH_SCALE={SCALE:g}): {total:,} samples for {len(releases):,} releases in "
            f"{len(bodies)} requests of ≤ {BATCH_ROWS:,} rows ({sum(map(len, bodies)) / 1e6:.0f} MB of JSON), "
            f"{SENDERS} concurrent senders"
        )
        breakdown = in_process_breakdown(bodies[0], args.profile)
        print(
            f"  one {BATCH_ROWS:,}-row batch in process (no HTTP): parse {breakdown['parse'] * 1e3:.0f} ms, "
            f"depth check {breakdown['depth'] * 1e3:.0f} ms, validate {breakdown['validate'] * 1e3:.0f} ms, "
            f"COPY to staging + upsert {breakdown['upsert'] * 1e3:.0f} ms"
        )

        with gunicorn_server(run_id=RUN_ID, redis_url=REDIS_URL) as server:
            client = Client(server.url, obtain_token(server.url, "bench.sender", PASSWORD))
            ingest_seconds = post_all(client, bodies, SENDERS)
            assert MetricSample.objects.count() == total
            resend_seconds = post_all(client, bodies, SENDERS)
            assert MetricSample.objects.count() == total
            peak_rss = server.peak_rss_mb()
            workers = len(server.worker_pids())
            del bodies

            received_at = timezone.now().isoformat()
            payload = copy_payload(sample_rows(releases, metric_keys, range(WINDOWS), start), metric_ids, received_at)
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE monitoring_metricsample")
            began = time.perf_counter()
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    "COPY monitoring_metricsample (source, release_id, metric_id, metric_version, market, arm, "
                    "window_start, window_end, numerator, denominator, received_at) FROM STDIN"
                ) as copy,
            ):
                for chunk in payload:
                    copy.write(chunk)
            copy_seconds = time.perf_counter() - began
            assert MetricSample.objects.count() == total
            del payload

            # The web app enqueued a look per request while no worker ran: start the worker on an empty queue.
            redis.Redis.from_url(REDIS_URL).delete(bench_queue(RUN_ID))
            with celery_worker(run_id=RUN_ID, redis_url=REDIS_URL):
                idle_timings, _ = breach_latency(client, releases, metric_keys, start, trials, load=False)
                timings, load_rate = breach_latency(client, releases, metric_keys, start, trials, load=True)

    ingest_rate, resend_rate, copy_rate = total / ingest_seconds, total / resend_seconds, total / copy_seconds
    median, p95 = statistics.median(timings), percentile(timings, 0.95)
    idle_median, idle_p95 = statistics.median(idle_timings), percentile(idle_timings, 0.95)
    copy_line = f"baseline psycopg COPY, one stream, same rows into the emptied table: {copy_rate:,.0f} rows/s"
    print(
        f"  HTTP ingest, {SENDERS} senders → {workers} gunicorn workers: "
        f"{ingest_seconds:.2f} s = {ingest_rate:,.0f} rows/s"
    )
    print(f"    {copy_line} ({copy_seconds:.2f} s); ratio {ingest_rate / copy_rate:.2f} (target ≥ 0.5)")
    print(f"  HTTP re-send of the same rows, unchanged: {resend_seconds:.2f} s = {resend_rate:,.0f} rows/s")
    print(f"    {copy_line}; ratio {resend_rate / copy_rate:.2f}")
    print(f"  web worker peak RSS (VmHWM): {peak_rss:.0f} MiB")
    print(
        f"  breach → incident under ingest load ({load_rate:,.0f} rows/s of new windows meanwhile), real worker on "
        f"Redis, {len(timings)} trials: median {median:.2f} s, p95 {p95:.2f} s, max {max(timings):.2f} s "
        "(target median ≤ 5 s)"
    )
    print(
        f"    baseline without load, same worker: median {idle_median:.2f} s, p95 {idle_p95:.2f} s; "
        f"ratio of medians {median / idle_median:.1f}"
    )
    figures = {
        "ingest_rows": total,
        "ingest_releases": len(releases),
        "ingest_senders": SENDERS,
        "ingest_web_workers": workers,
        "ingest_rows_per_s": ingest_rate,
        "ingest_resend_rows_per_s": resend_rate,
        "copy_rows_per_s": copy_rate,
        "ingest_ratio_vs_copy": ingest_rate / copy_rate,
        "ingest_resend_ratio_vs_copy": resend_rate / copy_rate,
        "web_worker_peak_rss_mb": peak_rss,
        "ingest_batch_breakdown_ms": {step: seconds * 1e3 for step, seconds in breakdown.items()},
        "detection_latency_median_s": median,
        "detection_latency_p95_s": p95,
        "idle_detection_latency_median_s_ingest_bench": idle_median,
        "detection_trials": len(timings),
        "detection_load_rows_per_s": load_rate,
    }
    record("ingest", figures)
    return figures


if __name__ == "__main__":
    main()

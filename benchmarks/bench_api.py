"""API throughput under concurrent clients against gunicorn with the production settings (issue 13, item 5).

16 client threads (one keep-alive connection each) for 30 s per phase (``BENCH_SCALE`` scales the seconds and the
releases), authenticated with a real API token of an On-call user:

* baseline: ``GET /bench/bare/``, the least a Django JSON view does, through the same middleware on the same
  gunicorn (``benchmarks/web_urls.py``; mounted only under the benchmark's settings);
* ``GET /api/v1/releases/`` (the first page, 50 releases with their stages and available transitions);
* ``POST /api/v1/metric-samples/`` with small batches (10 rows: one release × 5 metrics × 2 markets, a new window
  each time), the shape of a sender that posts as windows close.

Any answer but the expected status, or a failed connection, is an error; the target is none.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate python benchmarks/bench_api.py
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from _monitoring_setup import bench_database, bulk_live_release_ids
from _results import SCALE, record, scaled
from _server import Client, gunicorn_server, make_api_user, obtain_token

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CLIENTS = 16
RUN_ID = uuid.uuid4().hex[:12]
PASSWORD = "bench-" + uuid.uuid4().hex
MARKETS = ("US", "DE")


@dataclass
class Phase:
    name: str
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def describe(self) -> str:
        ordered = sorted(self.latencies) or [0.0]
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return (
            f"{self.per_second:,.0f} req/s ({self.requests:,} in {self.seconds:.1f} s), median "
            f"{statistics.median(ordered) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, {self.errors} errors"
        )


def run_phase(name: str, request: Callable[[int], tuple[int, int, bytes]], seconds: float) -> Phase:
    """``CLIENTS`` threads call ``request(thread_index)`` → (status, expected status, body) until time is up."""
    phase = Phase(name)
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                status, expected, content = request(index)
            except OSError as exc:
                status, expected, content = 0, 1, repr(exc).encode()
            elapsed = time.perf_counter() - began
            with lock:
                phase.requests += 1
                phase.latencies.append(elapsed)
                if status != expected:
                    phase.errors += 1
                    phase.first_error = phase.first_error or f"{status}: {content[:300]!r}"

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - began
    return phase


def list_query_counts() -> dict[int, int]:
    """Queries of ``GET /api/v1/releases/`` per page size, in this process: the same for 10 and 50 rows."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    from core.auth import issue_api_token

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user=User.objects.get(username='bench.api')).key}")
    counts = {}
    for limit in (10, 50):
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/releases/", {"limit": limit})
        assert response.status_code == 200, response.content
        counts[limit] = len(queries.captured_queries)
    return counts


def in_process_costs(*, requests: int, profile: bool) -> dict[str, float]:
    """Milliseconds per request of the bare view and of the list, in this process through Django's test client
    (the same middleware and URL module as the server's, no HTTP, no gunicorn): where the throughput ratio comes
    from. With ``profile``, the cProfile of the list requests, by cumulative time."""
    from django.contrib.auth.models import User
    from django.test.utils import override_settings
    from rest_framework.test import APIClient

    from core.auth import issue_api_token

    client = APIClient(HTTP_HOST="127.0.0.1")
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user=User.objects.get(username='bench.api')).key}")
    costs = {}
    with override_settings(ROOT_URLCONF="benchmarks.web_urls"):
        for name, path in (("bare", "/bench/bare/"), ("list", "/api/v1/releases/")):
            assert client.get(path).status_code == 200  # warm: URL resolver, compiled serializers, caches
            began = time.perf_counter()
            for _ in range(requests):
                client.get(path)
            costs[name] = (time.perf_counter() - began) / requests * 1e3
        if profile:  # a pass of its own: the profiler's overhead stays out of the figures above
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(requests):
                client.get("/api/v1/releases/")
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
            print(out.getvalue())
    return costs


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true", help="print the cProfile of the list, in process")
    args = parser.parse_args()
    release_count, seconds = scaled(1_000, minimum=20), max(1.0, 30 * SCALE)
    with bench_database(f"bench_api_{RUN_ID}"):
        from django.utils import timezone

        from core.roles import ON_CALL
        from monitoring.models import Guardrail, MetricDefinition

        Guardrail.objects.filter(scope="risk_level").delete()  # posting samples measures ingestion, not evaluation
        releases = bulk_live_release_ids(release_count, MARKETS)
        metric_keys = list(MetricDefinition.objects.filter(kind="rate").order_by("key").values_list("key", flat=True))[
            :5
        ]
        make_api_user("bench.api", ON_CALL, PASSWORD)
        queries = list_query_counts()
        costs = in_process_costs(requests=max(20, int(200 * SCALE)), profile=args.profile)
        start = (timezone.now() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        # Each client thread walks its own (release, window) pairs: every POST writes new rows.
        pairs = [iter(itertools.product(releases[index::CLIENTS], range(2 * 24 * 12 - 1))) for index in range(CLIENTS)]

        def small_batch(index: int) -> bytes:
            release, window = next(pairs[index])
            window_start = start + timedelta(minutes=5 * window)
            bounds = {
                "window_start": window_start.isoformat(),
                "window_end": (window_start + timedelta(minutes=5)).isoformat(),
            }
            return orjson.dumps(
                [{"release": release, "metric": metric, "market": market, "numerator": window % 50,
                  "denominator": 500, **bounds} for metric in metric_keys for market in MARKETS]
            )  # fmt: skip

        print(
            f"bench_api (BENCH_SCALE={SCALE:g}): {CLIENTS} clients × {seconds:.0f} s per phase, "
            f"{len(releases):,} live releases"
        )
        with gunicorn_server(run_id=RUN_ID, redis_url=REDIS_URL) as server:
            client = Client(server.url, obtain_token(server.url, "bench.api", PASSWORD))
            workers = len(server.worker_pids())
            bare = run_phase("bare", lambda index: (*client.get("/bench/bare/")[:1], 200, b""), seconds)

            def list_releases(index: int) -> tuple[int, int, bytes]:
                status, content = client.get("/api/v1/releases/")
                return status, 200, content

            def post_samples(index: int) -> tuple[int, int, bytes]:
                status, content = client.post_json("/api/v1/metric-samples/", small_batch(index))
                return status, 201, content

            listing = run_phase("list", list_releases, seconds)
            posting = run_phase("post", post_samples, seconds)

    print(
        f"  gunicorn: {workers} sync workers; GET /api/v1/releases/ runs {queries[50]} queries for 50 rows, "
        f"{queries[10]} for 10"
    )
    print(
        f"  in process (test client, no HTTP): bare view {costs['bare']:.2f} ms, list {costs['list']:.2f} ms per "
        f"request: the list can reach at most {costs['bare'] / costs['list']:.2f} of the bare view's rate"
    )
    print(f"  baseline GET /bench/bare/ (minimal Django JSON view): {bare.describe()}")
    print(f"  GET /api/v1/releases/: {listing.describe()}")
    print(f"    ratio to the bare view: {listing.per_second / bare.per_second:.2f} (target ≥ 0.5)")
    print(f"  POST /api/v1/metric-samples/ (10 rows): {posting.describe()}")
    print(f"    ratio to the bare view: {posting.per_second / bare.per_second:.2f}")
    for phase in (bare, listing, posting):
        if phase.first_error:
            print(f"  first {phase.name} error: {phase.first_error}")
    figures = {
        "api_clients": CLIENTS,
        "api_web_workers": workers,
        "api_bare_rps": bare.per_second,
        "api_list_rps": listing.per_second,
        "api_post_rps": posting.per_second,
        "api_list_ratio_vs_bare": listing.per_second / bare.per_second,
        "api_post_ratio_vs_bare": posting.per_second / bare.per_second,
        "api_bare_errors": bare.errors,
        "api_list_errors": listing.errors,
        "api_post_errors": posting.errors,
        "api_list_queries_50": queries[50],
        "api_list_queries_10": queries[10],
        "api_bare_in_process_ms": costs["bare"],
        "api_list_in_process_ms": costs["list"],
    }
    record("api", figures)
    return figures


if __name__ == "__main__":
    main()

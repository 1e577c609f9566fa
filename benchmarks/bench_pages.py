"""The pages people open, at scale: each role's home, the release list, a rolling-out release with its health
panel, the incident list and an incident, and ``GET /api/v1/releases/`` — median and p95 ms, and queries.

Requests go through Django's test Client in-process (the full middleware, auth, admin and DRF stack, no network
and no web server): the figures are the application's own time, not a server's. Full scale (``BENCH_SCALE=1``):
10,000 live releases, 100,000 audit events, ~1,080,000 samples and one evaluation cycle's looks and incidents;
the query counts are taken at a tenth of that too, and must be the same.

DATABASE_URL=postgres://postgres@127.0.0.1:5432/rollgate python benchmarks/bench_pages.py [--requests 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _monitoring_setup import bench_database, bulk_live_fleet
from _results import record, scaled

ROLES = ("author", "pm", "reviewer", "oncall", "auditor")


def _users() -> dict[str, Any]:
    from django.contrib.auth.models import Group, User

    from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS

    groups = {"author": AUTHORS, "pm": PROGRAM_MANAGERS, "reviewer": REVIEWERS, "oncall": ON_CALL, "auditor": AUDITORS}
    users = {}
    for role, group in groups.items():
        user, _ = User.objects.get_or_create(username=f"bench.{role}", defaults={"is_staff": True})
        user.groups.add(Group.objects.get(name=group))
        users[role] = user
    return users


def _pages(users: dict[str, Any]) -> list[tuple[str, Any, str]]:
    from monitoring.models import Incident
    from releases.models import Release

    release = Release.objects.filter(status="rolling_out", incidents__isnull=False).order_by("-id").first()
    incident = Incident.objects.order_by("-id").first()
    assert release is not None and incident is not None, "the fleet needs a failing release"
    pages = [(f"home ({role})", users[role], "/admin/") for role in ROLES]
    pages += [
        ("release list", users["pm"], "/admin/releases/release/"),
        ("release page + health panel", users["pm"], f"/admin/releases/release/{release.pk}/change/"),
        ("incident list", users["oncall"], "/admin/monitoring/incident/"),
        ("incident page", users["oncall"], f"/admin/monitoring/incident/{incident.pk}/change/"),
        ("GET /api/v1/releases/", users["pm"], "/api/v1/releases/"),
    ]
    return pages


def measure(pages: list[tuple[str, Any, str]], requests: int) -> dict[str, dict[str, float]]:
    import logging

    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    # As Django's TestCase does: keep the one connection across requests (a production worker keeps its own with
    # CONN_MAX_AGE), so reconnecting is not timed and the captured queries are not cleared by a reconnect.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per login would bury the figures
    with override_settings(ALLOWED_HOSTS=["testserver"]):  # the test Client's host; no server is listening
        return _measure(pages, requests, Client, connection, CaptureQueriesContext)


def _measure(pages: list[tuple[str, Any, str]], requests: int, Client: Any, connection: Any, Capture: Any) -> Any:
    figures = {}
    for name, user, url in pages:
        client = Client()
        client.force_login(user)
        client.get(url)  # fills the process-wide caches (content types, …) the first page of a kind would pay
        connection.queries_log.clear()  # a full log (its deque holds 9,000) would make the capture read 0
        with Capture(connection) as captured:
            response = client.get(url)
        # Counted now: the capture reads the connection's log lazily, and the next request's start clears it.
        queries = len(captured.captured_queries)
        assert response.status_code == 200, (name, url, response.status_code)
        assert queries > 0, (name, "no query captured")
        timings = []
        for _ in range(requests):
            began = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (name, url, response.status_code)
        timings.sort()
        figures[name] = {
            "median_ms": statistics.median(timings),
            "p95_ms": timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))],
            "queries": queries,
        }
    return figures


def grow(releases: int, audit_events: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from monitoring.services import guardrails_evaluate

    began = time.perf_counter()
    # One release in 50 breaches (one in the fleet at least, at a tiny scale): the incident pages need one.
    counts = bulk_live_fleet(releases, audit_events=audit_events, failing_every=min(50, releases))
    result = guardrails_evaluate(now=timezone.now())
    with connection.cursor() as cursor:
        # As autovacuum would after a bulk load: the planner's statistics of the looks and incidents just written.
        cursor.execute("ANALYZE")
    print(
        f"  + {counts} and a cycle ({result.evaluations} looks, {result.incidents_opened} incidents): "
        f"{time.perf_counter() - began:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    small, large = scaled(1_000, minimum=10), scaled(10_000, minimum=50)
    with bench_database("bench_pages"):
        users = _users()
        print(f"pages: {small} then {large} live releases (10 audit events and ~108 samples a release)")
        grow(small, audit_events=small * 10)
        at_small = measure(_pages(users), max(3, args.requests // 4))
        grow(large - small, audit_events=(large - small) * 10)
        at_large = measure(_pages(users), args.requests)
    figures: dict[str, Any] = {"pages_releases": large, "pages_requests": args.requests, "pages_client": "in-process"}
    print(f"{'page':34} {'median ms':>10} {'p95 ms':>8} {'queries':>8} {f'at {small}':>9}")
    worst = 0.0
    for name, row in at_large.items():
        key = "pages_" + "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_").replace("__", "_")
        print(
            f"{name:34} {row['median_ms']:10.1f} {row['p95_ms']:8.1f} {row['queries']:8d} "
            f"{at_small[name]['queries']:9d}"
        )
        figures[f"{key}_median_ms"] = round(row["median_ms"], 1)
        figures[f"{key}_p95_ms"] = round(row["p95_ms"], 1)
        figures[f"{key}_queries_10k"] = row["queries"]
        figures[f"{key}_queries_1k"] = at_small[name]["queries"]
        worst = max(worst, row["median_ms"])
    figures["pages_worst_median_ms"] = round(worst, 1)
    grew = [name for name in at_large if at_large[name]["queries"] != at_small[name]["queries"]]
    figures["pages_queries_constant"] = not grew
    print(f"worst median: {worst:.1f} ms (target < 300); queries that grew with rows: {grew or 'none'}")
    print(f"recorded in {record('pages', figures)}")


if __name__ == "__main__":
    main()

"""Verdicts you can trust, measured through the project's real path on PostgreSQL (issue 9).

ingestion service (``metric_samples_ingest``) → evaluation service (``guardrails_evaluate``) → incidents, over
simulated hourly looks, and a real Celery worker on Redis for the breach → incident latency:

* A/A false alarms per release: treatment and control both at 5% (fallback_rate, 100 conversations per hour and
  arm in each of 2 markets, a relative guardrail with margin 0 — the strictest), 30 days of hourly looks; a
  release false-alarms when any of its sequences opens an incident. Target ≤ 2%.
* The same for an absolute guardrail whose threshold is the true rate (5%).
* Power: control at 20%, treatment at 26% (lower is better, margin 0): the share of releases with an incident
  within 3 days, and the median hours to it.
* Breach → incident latency with a real worker: POST-equivalent ingest (enqueues on commit) → the worker's look →
  incident row, over 20 trials. Target median ≤ 5 s, p95 ≤ 10 s.

``BENCH_SCALE`` (default 1) scales the number of releases and simulated days (at least 1 release and 1 day);
``BENCH_SCALE=0.01`` is the smoke test's scale. ``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/7) names the
broker; the queue and the unacknowledged-message keys are unique to the run.
"""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

from _monitoring_setup import bench_database, make_live_releases
from _results import SCALE, record, scaled
from _worker import celery_worker

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
RUN_ID = uuid.uuid4().hex[:12]


def wilson(x: int, n: int) -> tuple[float, float]:
    from monitoring.statistics import wilson_interval

    interval = wilson_interval(x, n, 0.95)
    return interval.lower, interval.upper


def setup_guardrails(releases: list[Any], metric_key: str, **fields: Any) -> None:
    from monitoring.models import Guardrail, MetricDefinition

    metric = MetricDefinition.objects.get(key=metric_key)
    for release in releases:
        guardrail = Guardrail(
            name=f"{metric_key} {'relative' if fields.get('relative_margin') is not None else 'absolute'}",
            metric=metric,
            scope="release",
            release=release,
            failure_limit=0,
            consecutive_success_limit=1,
            planned_treatment_share=0.5,
            **fields,
        )
        guardrail.full_clean()
        guardrail.save()


def simulate(*, releases: int, days: int, seed: int = 20261126) -> dict[str, Any]:
    """Hourly looks through the real services; returns per-group outcomes."""
    import numpy as np
    from django.utils import timezone

    from monitoring.models import Incident
    from monitoring.services import guardrails_evaluate, metric_samples_ingest
    from releases.models import Release

    rng = np.random.default_rng(seed)
    hours = days * 24
    power_hours = min(hours, 72)
    aa = make_live_releases(releases, markets=("US", "DE"))
    absolute = make_live_releases(releases, markets=("US",))
    power = make_live_releases(max(1, releases // 3), markets=("US",))
    setup_guardrails(aa, "fallback_rate", relative_margin=0.0, min_sample_size=500)
    setup_guardrails(absolute, "fallback_rate", absolute_threshold=0.05, min_sample_size=500)
    setup_guardrails(power, "fallback_rate", relative_margin=0.0, min_sample_size=500)
    start = (timezone.now() - timedelta(hours=hours + 2)).replace(minute=0, second=0, microsecond=0)
    every = [r.pk for r in aa + absolute + power]
    # Fixture data: the phase began at the simulation's start (as make_live_releases places them in rolling_out).
    Release.objects.filter(pk__in=every).update(stage_started_at=start)
    per_arm = 100
    first_incident: dict[int, int] = {}
    seconds = 0.0
    for hour in range(hours):
        window_start = start + timedelta(hours=hour)
        window = {
            "window_start": window_start.isoformat(),
            "window_end": (window_start + timedelta(hours=1)).isoformat(),
        }
        rows: list[dict[str, Any]] = []

        def add(
            release: Any, market: str, arm: str, p: float, rows: list[dict[str, Any]] = rows, window: Any = window
        ) -> None:
            rows.append(
                {
                    "release": release.pk,
                    "metric": "fallback_rate",
                    "market": market,
                    "arm": arm,
                    "numerator": int(rng.binomial(per_arm, p)),
                    "denominator": per_arm,
                    **window,
                }
            )

        for release in aa:
            for market in ("US", "DE"):
                add(release, market, "treatment", 0.05)
                add(release, market, "control", 0.05)
        for release in absolute:
            add(release, "US", "treatment", 0.05)
        if hour < power_hours:
            for release in power:
                add(release, "US", "treatment", 0.26)
                add(release, "US", "control", 0.20)
        touched = sorted({row["release"] for row in rows})
        began = time.perf_counter()
        for chunk in range(0, len(rows), 10_000):
            metric_samples_ingest(rows=rows[chunk : chunk + 10_000], enqueue=False)
        # What the enqueued task runs, at the end of the simulated hour.
        guardrails_evaluate(release_ids=touched, now=window_start + timedelta(hours=1, minutes=1))
        seconds += time.perf_counter() - began
        for release_id in (
            Incident.objects.filter(release_id__in=touched)
            .exclude(release_id__in=list(first_incident))
            .values_list("release_id", flat=True)
        ):
            first_incident[release_id] = hour + 1
    return {
        "aa": [first_incident.get(r.pk) for r in aa],
        "absolute": [first_incident.get(r.pk) for r in absolute],
        "power": [first_incident.get(r.pk) for r in power],
        "hours": hours,
        "power_hours": power_hours,
        "seconds": seconds,
        "looks": hours,
    }


def _rate_line(label: str, outcomes: list[int | None]) -> str:
    alarms = sum(1 for o in outcomes if o is not None)
    lower, upper = wilson(alarms, len(outcomes))
    return (
        f"{label}: {alarms}/{len(outcomes)} releases = {alarms / len(outcomes):.2%} "
        f"(95% CI {lower:.2%}–{upper:.2%}; target ≤ 2%)"
    )


def latency(trials: int) -> list[float]:
    """Breach → incident with a real worker on Redis: ingest (enqueue on commit) → worker's look → incident."""
    from datetime import UTC, datetime

    from monitoring.models import Incident
    from monitoring.services import metric_samples_ingest
    from releases.models import Release

    timings: list[float] = []
    with celery_worker(run_id=RUN_ID, redis_url=REDIS_URL):
        # One warm-up release (worker imports, connections), then one fresh release per timed trial.
        releases = make_live_releases(trials + 1, markets=("US",))
        setup_guardrails(releases, "error_rate", absolute_threshold=0.05, min_sample_size=100)
        start = datetime.fromtimestamp((time.time() // 3600 - 3) * 3600, tz=UTC)
        Release.objects.filter(pk__in=[r.pk for r in releases]).update(stage_started_at=start)
        for index, release in enumerate(releases):
            began = time.time()
            # The API's POST calls this service; the evaluation is enqueued when its transaction commits.
            metric_samples_ingest(rows=[breach_row(release, start + timedelta(hours=1))], enqueue=True)
            opened = wait_incident(release.pk, 60 if index == 0 else 30)
            if index:
                timings.append(opened - began if opened else math.inf)
    assert Incident.objects.count() >= len(timings)
    return timings


def breach_row(release: Any, window_start: Any) -> dict[str, Any]:
    return {
        "release": release.pk,
        "metric": "error_rate",
        "market": "US",
        "window_start": window_start.isoformat(),
        "window_end": (window_start + timedelta(hours=1)).isoformat(),
        "numerator": 300,
        "denominator": 1000,
    }


def wait_incident(release_id: int, timeout: float) -> float | None:
    from monitoring.models import Incident

    deadline = time.time() + timeout
    while time.time() < deadline:
        if Incident.objects.filter(release_id=release_id).exists():
            return time.time()
        time.sleep(0.02)
    return None


def main() -> dict[str, Any]:
    releases, days, trials = scaled(300), scaled(30), max(2, scaled(20))
    with bench_database(f"bench_verdicts_{RUN_ID}"):
        print(f"bench_verdicts (BENCH_SCALE={SCALE:g}): {releases} releases per group, {days} days of hourly looks")
        result = simulate(releases=releases, days=days)
        print(f"  {result['looks']} hourly looks in {result['seconds']:.1f} s (ingest + evaluate, real services)")
        print("  " + _rate_line(f"A/A vs control, 2 markets, 100 conv/h/arm, {days} days", result["aa"]))
        print("  " + _rate_line(f"absolute bound at the true rate (5%), {days} days", result["absolute"]))
        detected = [o for o in result["power"] if o is not None]
        lower, upper = wilson(len(detected), len(result["power"]))
        median = f"{statistics.median(detected):.0f} h" if detected else "n/a"
        print(
            f"  power 0.20 → 0.26 within {result['power_hours']} h: {len(detected)}/{len(result['power'])} = "
            f"{len(detected) / len(result['power']):.1%} (95% CI {lower:.1%}–{upper:.1%}); median {median} to the "
            "incident"
        )
        timings = latency(trials)
        ordered = sorted(timings)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        print(
            f"  breach → incident, real worker on Redis, {len(timings)} trials: "
            f"median {statistics.median(timings):.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s "
            "(target median ≤ 5 s, p95 ≤ 10 s)"
        )
        aa_false = sum(o is not None for o in result["aa"])
        absolute_false = sum(o is not None for o in result["absolute"])
        record(
            "verdicts",
            {
                "verdict_releases_per_group": releases,
                "verdict_days": days,
                "aa_false_alarm_rate": aa_false / len(result["aa"]),
                "aa_false_alarm_ci95": wilson(aa_false, len(result["aa"])),
                "absolute_false_alarm_rate": absolute_false / len(result["absolute"]),
                "absolute_false_alarm_ci95": wilson(absolute_false, len(result["absolute"])),
                "power_within_3_days": len(detected) / len(result["power"]),
                "power_median_hours": statistics.median(detected) if detected else None,
                "idle_detection_latency_median_s": statistics.median(timings),
                "idle_detection_latency_p95_s": p95,
            },
        )
        return {**result, "latency": timings}


if __name__ == "__main__":
    main()

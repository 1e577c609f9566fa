"""The monitoring half of the demo's story, told through the services: a notification endpoint, two days of
hourly metric samples ingested like any source sends them, and the guardrail looks of the last day evaluated hour
by hour — so on-call's first screen has a breaching canary with an open incident, a healthy verification and a
launch with too little data to judge."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from monitoring.choices import Arm, Channel, Severity
from monitoring.services import guardrails_evaluate, metric_samples_ingest, notification_endpoint_create
from releases.choices import ReleaseStatus
from releases.models import Release, RolloutStage

HOURS_OF_SAMPLES = 36
HOURS_OF_LOOKS = 24


@dataclass(frozen=True)
class Traffic:
    """Conversations per hour and the rates a release shows, per arm; ``drift`` is how far the treatment's
    escalation rate climbs over the last ``HOURS_OF_LOOKS`` hours (the breach)."""

    conversations: int
    control_conversations: int
    escalation: float
    control_escalation: float
    error: float = 0.01
    csat: float = 0.84
    drift: float = 0.0


def _rate(rng: random.Random, n: int, p: float) -> int:
    # Binomial noise without numpy: the normal approximation, clipped to [0, n].
    mean, spread = n * p, (n * p * (1 - p)) ** 0.5
    return max(0, min(n, round(rng.gauss(mean, spread))))


def sample_rows(release: Release, markets: Sequence[str], traffic: Traffic, *, now: datetime) -> list[dict[str, Any]]:
    # Seeded by the title, not the id: ids depend on what the database held before, and the story must not.
    rng = random.Random(release.title)
    last = now.replace(minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = []
    for hours_ago in range(HOURS_OF_SAMPLES, 0, -1):
        start = last - timedelta(hours=hours_ago)
        climb = max(0.0, (HOURS_OF_LOOKS - hours_ago) / HOURS_OF_LOOKS) * traffic.drift
        for market in markets:
            # One swing of traffic for both arms of an hour: the split itself stays as planned, or the
            # sample-ratio check would (rightly) flag the story.
            swing = rng.gauss(1.0, 0.08)
            arms = [(Arm.TREATMENT, traffic.conversations, traffic.escalation + climb)]
            if traffic.control_conversations:
                arms.append((Arm.CONTROL, traffic.control_conversations, traffic.control_escalation))
            for arm, n, escalation in arms:
                n = max(1, round(n * swing))
                rated = max(1, n // 4)
                for metric, numerator, denominator in (
                    ("escalation_rate", _rate(rng, n, escalation), n),
                    ("error_rate", _rate(rng, n * 3, traffic.error), n * 3),  # bot turns
                    ("csat", _rate(rng, rated, traffic.csat), rated),
                ):
                    rows.append(
                        {
                            "release": release.pk,
                            "metric": metric,
                            "market": market,
                            "arm": arm,
                            "window_start": start.isoformat(),
                            "window_end": (start + timedelta(hours=1)).isoformat(),
                            "numerator": numerator,
                            "denominator": denominator,
                        }
                    )
    return rows


def tell(*, program_manager: Any, stories: Sequence[tuple[Release, Sequence[str], Traffic]]) -> None:
    """Endpoint, samples, then a day of hourly looks (oldest first, as the every-minute cycle would have)."""
    notification_endpoint_create(
        actor=program_manager,
        name="On-call e-mail (printed on the console by `make run`)",
        channel=Channel.EMAIL,
        target="oncall@demo.test",
        min_severity=Severity.SEV4,
    )
    now = timezone.now()
    began = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS_OF_SAMPLES + 1)
    for release, _markets, _traffic in stories:
        _phase_began(release, began)
    rows = [row for release, markets, traffic in stories for row in sample_rows(release, markets, traffic, now=now)]
    release_ids = [release.pk for release, _markets, _traffic in stories]
    # Each hour's windows arrive when that hour ends and are looked at then, as the sources and the every-minute
    # cycle would have done: the looks of the story are judged on what had arrived by their time.
    by_end: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_end.setdefault(row["window_end"], []).append(row)
    for window_end in sorted(by_end):
        # Never later than now: in the first minute of an hour the last window would otherwise "arrive" in the
        # future, and a real sample sent right after the seed would look older than the story's.
        arrived = min(datetime.fromisoformat(window_end) + timedelta(minutes=1), now)
        metric_samples_ingest(rows=by_end[window_end], enqueue=False, now=arrived)
        if arrived >= now - timedelta(hours=HOURS_OF_LOOKS):
            guardrails_evaluate(release_ids=release_ids, now=arrived)
    guardrails_evaluate(release_ids=release_ids, now=timezone.now())


def _phase_began(release: Release, at: datetime) -> None:
    """The story's current phase (stage or verification) began ``at``, before its samples: a cohort counts only
    samples of its own phase. Only the clock is set, as the demo cannot wait two days; every transition went
    through the services."""
    if release.status == ReleaseStatus.VERIFYING:
        Release.objects.filter(pk=release.pk).update(verification_started_at=at)
    else:
        Release.objects.filter(pk=release.pk).update(stage_started_at=at)
        if release.current_stage_id is not None:
            RolloutStage.objects.filter(pk=release.current_stage_id).update(started_at=at)
    release.refresh_from_db()

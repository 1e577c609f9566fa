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
from releases.models import Release

HOURS_OF_SAMPLES = 36
HOURS_OF_LOOKS = 24
SOURCE = "demo"


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
    rng = random.Random(release.pk)  # the same story on every run
    last = now.replace(minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = []
    for hours_ago in range(HOURS_OF_SAMPLES, 0, -1):
        start = last - timedelta(hours=hours_ago)
        climb = max(0.0, (HOURS_OF_LOOKS - hours_ago) / HOURS_OF_LOOKS) * traffic.drift
        for market in markets:
            arms = [(Arm.TREATMENT, traffic.conversations, traffic.escalation + climb)]
            if traffic.control_conversations:
                arms.append((Arm.CONTROL, traffic.control_conversations, traffic.control_escalation))
            for arm, n, escalation in arms:
                n = max(1, round(rng.gauss(n, n * 0.08)))
                rated = max(1, n // 4)
                for metric, numerator, denominator in (
                    ("escalation_rate", _rate(rng, n, escalation), n),
                    ("error_rate", _rate(rng, n * 3, traffic.error), n * 3),  # bot turns
                    ("csat", _rate(rng, rated, traffic.csat), rated),
                ):
                    rows.append(
                        {
                            "source": SOURCE,
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
    rows = [row for release, markets, traffic in stories for row in sample_rows(release, markets, traffic, now=now)]
    metric_samples_ingest(rows=rows, enqueue=False)
    release_ids = [release.pk for release, _markets, _traffic in stories]
    for hours_ago in range(HOURS_OF_LOOKS, -1, -1):
        guardrails_evaluate(release_ids=release_ids, now=now - timedelta(hours=hours_ago))

"""Bulk, idempotent ingestion of metric samples: validate every row with two queries, write with one statement."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import OperationalError, transaction
from django.utils import timezone

from core.bulk_input import MAX_STORABLE_INT, as_count, as_datetime, as_number
from releases.models import Release

from ..choices import Arm, MetricKind
from ..errors import IngestConflict, InvalidRows, TooManyRows
from ..models import MetricDefinition, MetricSample

logger = logging.getLogger(__name__)

MAX_ROWS = 10_000
INGEST_ATTEMPTS = 4
UNIQUE_FIELDS = ["source", "release", "metric", "market", "arm", "window_start"]
SUM_FIELDS = ("sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")
UPDATE_FIELDS = [
    "window_end",
    "numerator",
    "denominator",
    "value",
    "metric_version",
    "received_at",
    "units",
    *SUM_FIELDS,
]
_ARMS = {arm.value for arm in Arm}


@dataclass(frozen=True)
class IngestResult:
    rows: int
    release_ids: tuple[int, ...]


# Sane bounds on a window: metrics describe conversations that happened (a little clock skew allowed), within
# the retention of live metrics; year 1 or 9999 is a broken sender, not data.
OLDEST_SAMPLE = timedelta(days=3 * 365)
LATEST_SAMPLE_END = timedelta(hours=1)
LONGEST_WINDOW = timedelta(days=31)


def _as_release_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 < value <= MAX_STORABLE_INT:
        return value
    return None


def _out_of_range(number: float, metric: MetricDefinition) -> str | None:
    # The definition states its range (rates: of their counts; gauges: of the value). A value outside it is this
    # row's error: stored, it would overflow the evaluation's aggregates and stop the batch of every release.
    if metric.min_value is not None and number < metric.min_value:
        return f"Below {metric.key}'s minimum of {metric.min_value:g}{metric.unit and ' ' + metric.unit}."
    if metric.max_value is not None and number > metric.max_value:
        return f"Above {metric.key}'s maximum of {metric.max_value:g}{metric.unit and ' ' + metric.unit}."
    return None


def _unit_sums(
    row: Mapping[str, Any], metric: MetricDefinition, numerator: int | None, denominator: int | None, err: Any
) -> dict[str, Any]:
    """The per-conversation sums of the delta method (units, Σx, Σy, Σx², Σy², Σxy): all or none, on a rate,
    consistent with the counts (Σx is the numerator, Σy the denominator), finite and within the definition's
    range squared — so they can neither lie about the counts nor overflow the cohort's aggregate."""
    present = [f for f in ("units", *SUM_FIELDS) if row.get(f) is not None]
    if not present:
        return {}
    if metric.kind != MetricKind.RATE:
        err("units", f"{metric.key} is a gauge: per-conversation sums apply to rates only.")
        return {}
    if len(present) != 1 + len(SUM_FIELDS):
        err("units", "Send units with all of sum_x, sum_y, sum_xx, sum_yy and sum_xy, or none of them.")
        return {}
    units = as_count(row.get("units"))
    if units is None or units < 1:
        err("units", "A whole number of conversations, at least 1.")
    sums = {f: as_number(row.get(f)) for f in SUM_FIELDS}
    limit = metric.max_value**2 if metric.max_value is not None else None
    for field, number in sums.items():
        if number is None or number < 0:
            err(field, "A finite number, not negative.")
        elif limit is not None and number > limit:
            err(field, f"Above {metric.key}'s range ({limit:g}).")
    if sums["sum_x"] is not None and numerator is not None and sums["sum_x"] != numerator:
        err("sum_x", "Must equal the numerator (Σx over the conversations).")
    if sums["sum_y"] is not None and denominator is not None and sums["sum_y"] != denominator:
        err("sum_y", "Must equal the denominator (Σy over the conversations).")
    return {"units": units, **sums}


def validate_samples(rows: Sequence[Any], *, now: datetime | None = None) -> list[MetricSample]:
    """Validate every row (two queries in all) and return unsaved samples, or raise ``InvalidRows``."""
    if len(rows) > MAX_ROWS:
        raise TooManyRows(f"At most {MAX_ROWS} rows per request; got {len(rows)}.", extra={"max_rows": MAX_ROWS})
    now = now or timezone.now()
    release_ids = {rid for row in rows if isinstance(row, Mapping) and (rid := _as_release_id(row.get("release")))}
    metric_keys = {row.get("metric") for row in rows if isinstance(row, Mapping) and isinstance(row.get("metric"), str)}
    releases = {r["id"]: r for r in Release.objects.filter(id__in=release_ids).values("id", "markets")}
    metrics = {m.key: m for m in MetricDefinition.objects.filter(key__in=metric_keys)}

    samples: list[MetricSample] = []
    bad: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        errors: dict[str, list[str]] = {}

        def err(field: str, message: str, errors: dict[str, list[str]] = errors) -> None:
            errors.setdefault(field, []).append(message)

        if not isinstance(row, Mapping):
            bad.append({"index": index, "errors": {"non_field_errors": ["Each row must be an object."]}})
            continue
        release_id = _as_release_id(row.get("release"))
        release = releases.get(release_id) if release_id is not None else None
        if release_id is None:
            err("release", "A release id is required.")
        elif release is None:
            err("release", f"Unknown release {release_id}.")
        metric_key = row.get("metric")
        metric = metrics.get(metric_key) if isinstance(metric_key, str) else None
        if metric is None:
            err("metric", f"Unknown metric {row.get('metric')!r}.")
        market = row.get("market")
        if not isinstance(market, str) or not market.strip() or len(market) > 16:
            err("market", "A market code of at most 16 characters is required.")
        elif release is not None and release["markets"] and market not in release["markets"]:
            err("market", f"Market {market!r} is not one of the release's markets {release['markets']}.")
        arm = row.get("arm", Arm.TREATMENT) or Arm.TREATMENT
        if not isinstance(arm, str) or arm not in _ARMS:
            err("arm", f"Arm must be one of {sorted(_ARMS)}.")
        source = row.get("source", "api") or "api"
        if not isinstance(source, str) or len(source) > 64:
            err("source", "A source name of at most 64 characters.")
        start, end = as_datetime(row.get("window_start")), as_datetime(row.get("window_end"))
        if start is None:
            err("window_start", "An ISO 8601 date-time with a time zone is required.")
        if end is None:
            err("window_end", "An ISO 8601 date-time with a time zone is required.")
        if start is not None and end is not None and end <= start:
            err("window_end", "The window must end after it starts.")
        if start is not None and start < now - OLDEST_SAMPLE:
            err("window_start", f"A sample window cannot start more than {OLDEST_SAMPLE.days} days ago.")
        if end is not None and end > now + LATEST_SAMPLE_END:
            err("window_end", "A sample window cannot end in the future (conversations not had yet).")
        if start is not None and end is not None and end - start > LONGEST_WINDOW:
            err("window_end", f"A sample window is at most {LONGEST_WINDOW.days} days long.")

        numerator = denominator = value = None
        if metric is not None and metric.kind == MetricKind.RATE:
            numerator, denominator = as_count(row.get("numerator")), as_count(row.get("denominator"))
            if numerator is None:
                err("numerator", "A whole number is required.")
            elif numerator < 0:
                err("numerator", "Must not be negative.")
            if denominator is None:
                err("denominator", "A whole number is required.")
            elif denominator < 0:
                err("denominator", "Must not be negative.")
            if numerator is not None and denominator is not None and numerator > denominator >= 0:
                err("numerator", "Must not be above the denominator.")
            for field, count in (("numerator", numerator), ("denominator", denominator)):
                if count is not None and count >= 0 and (problem := _out_of_range(count, metric)):
                    err(field, problem)
            if row.get("value") is not None:
                err("value", f"{metric.key} is a rate: send numerator and denominator, not a value.")
        elif metric is not None:
            value = as_number(row.get("value"))
            if value is None:
                err("value", "A finite number is required.")
            elif value < 0:
                err("value", "Must not be negative.")
            elif problem := _out_of_range(value, metric):
                err("value", problem)
            if row.get("denominator") is not None:
                denominator = as_count(row.get("denominator"))
                if denominator is None or denominator < 0:
                    err("denominator", "A whole number, not negative.")

        unit_sums = _unit_sums(row, metric, numerator, denominator, err) if metric is not None else {}

        if not errors:
            key = (source, release_id, metric.key if metric else None, market, arm, start)
            if key in seen:
                err(
                    "non_field_errors", f"Same (source, release, metric, market, arm, window_start) as row {seen[key]}."
                )
            else:
                seen[key] = index
        if errors:
            bad.append({"index": index, "errors": errors})
            continue
        assert metric is not None and release_id is not None and start is not None and end is not None
        assert isinstance(market, str)
        samples.append(
            MetricSample(
                source=source,
                release_id=release_id,
                metric=metric,
                metric_version=metric.version,
                market=market,
                arm=arm,
                window_start=start,
                window_end=end,
                numerator=numerator,
                denominator=denominator,
                value=value,
                received_at=now,
                **unit_sums,
            )
        )
    if bad:
        raise InvalidRows(bad)
    return samples


def metric_samples_ingest(*, rows: Sequence[Any], enqueue: bool = True, now: datetime | None = None) -> IngestResult:
    """Validate and upsert ``rows`` (all or nothing). Re-sending a window updates it.

    Concurrent overlapping batches cannot deadlock on one another (rows are written in key order); if the database
    still aborts the transaction as a deadlock or serialization failure (another writer locking in another order,
    e.g. a CSV import), the whole transaction is retried a few times, then refused as ``IngestConflict`` (409),
    never a 500. After commit the touched releases are queued for evaluation; if the broker is down the samples
    stay stored and the every-minute beat cycle catches up. ``now`` is when they were received (the demo's
    history; default the clock).
    """
    samples = validate_samples(rows, now=now)
    # Inside a caller's transaction a retry cannot undo what that transaction already locked: one attempt only.
    attempts = 1 if transaction.get_connection().in_atomic_block else INGEST_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                upsert_samples(samples)
            break
        except OperationalError as exc:
            if not _is_lock_conflict(exc):
                raise
            logger.warning("Ingest of %s rows hit %s (attempt %s/%s)", len(samples), exc.__cause__, attempt, attempts)
            if attempt == attempts:
                raise IngestConflict(
                    "Concurrent writes to the same samples conflicted; nothing was written. Retry the request."
                ) from exc
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # jitter: the retries of two clients drift apart
    release_ids = tuple(sorted({sample.release_id for sample in samples}))
    if enqueue and release_ids:
        transaction.on_commit(lambda: enqueue_evaluation(release_ids))
    return IngestResult(rows=len(samples), release_ids=release_ids)


def _is_lock_conflict(exc: OperationalError) -> bool:
    return isinstance(exc.__cause__, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)


def _natural_key(sample: MetricSample) -> tuple[Any, ...]:
    return (sample.source, sample.release_id, sample.metric_id, sample.market, sample.arm, sample.window_start)


def upsert_samples(samples: Iterable[MetricSample]) -> None:
    # One INSERT ... ON CONFLICT (natural key) DO UPDATE statement on PostgreSQL and SQLite alike. Rows go in the
    # order of the unique key, so two overlapping batches lock their common rows in the same order: one waits for
    # the other instead of each holding a row the other needs (a deadlock, which PostgreSQL resolves by aborting).
    MetricSample.objects.bulk_create(
        sorted(samples, key=_natural_key),
        update_conflicts=True,
        unique_fields=UNIQUE_FIELDS,
        update_fields=UPDATE_FIELDS,
    )


def enqueue_evaluation(release_ids: Sequence[int]) -> bool:
    from ..tasks import evaluate_releases

    try:
        evaluate_releases.delay(list(release_ids))
    except Exception:  # the broker's error types vary by transport; none of them may lose the samples
        logger.warning(
            "Could not enqueue evaluation of releases %s; the beat cycle will evaluate them.",
            list(release_ids),
            exc_info=True,
        )
        return False
    return True

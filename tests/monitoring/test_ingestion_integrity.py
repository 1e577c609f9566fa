"""Ingestion cannot poison evaluation or deadlock: values are bounded by their metric's stated range, and
overlapping concurrent batches are written in key order (retried, then refused as a JSON 409, never a 500)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError
from django.utils import timezone

from monitoring.errors import IngestConflict, InvalidRows
from monitoring.models import Evaluation, MetricDefinition, MetricSample
from monitoring.services import guardrails_evaluate, metric_samples_ingest
from monitoring.services import ingestion as ingestion_module
from tests.concurrency import raised, run_at_once
from tests.conftest import api_as
from tests.factories import SolutionFactory, UserFactory, make_release

from .conftest import make_guardrail, put_live, sample_row

URL = "/api/v1/metric-samples/"


def latency_row(release: Any, value: Any, *, hours_ago: int = 3, market: str = "US") -> dict[str, Any]:
    row = sample_row(release, "latency_p95_ms", numerator=0, denominator=0, market=market)
    start = timezone.now() - timedelta(hours=hours_ago)
    row.update(window_start=start.isoformat(), window_end=(start + timedelta(hours=1)).isoformat(), value=value)
    del row["numerator"], row["denominator"]
    return row


@pytest.mark.django_db
def test_seeded_definitions_state_their_range():
    bounds = {m.key: (m.kind, m.min_value, m.max_value) for m in MetricDefinition.objects.all()}
    assert bounds["latency_p95_ms"] == ("gauge", 0, 600_000)
    rates = {key: (low, high) for key, (kind, low, high) in bounds.items() if kind == "rate"}
    assert rates and set(rates.values()) == {(0, 10**9)}


@pytest.mark.django_db
def test_two_huge_latency_samples_are_rejected_by_index_and_evaluation_goes_on(rolling_release, oncall):
    """The attack: two latency_p95_ms samples of 1e308 made PostgreSQL's avg overflow and every batch fail."""
    guardrail = make_guardrail(
        rolling_release,
        MetricDefinition.objects.get(key="latency_p95_ms"),
        absolute_threshold=2000,
        relative_margin=None,
        min_sample_size=1,
    )
    rows = [
        latency_row(rolling_release, 850.0, hours_ago=5),
        latency_row(rolling_release, 1e308, hours_ago=4),
        latency_row(rolling_release, 1e308, hours_ago=3),
        latency_row(rolling_release, 600_001, hours_ago=6),
    ]
    response = api_as(oncall).post(URL, rows, format="json")
    assert response.status_code == 400, response.content
    by_index = {row["index"]: row["errors"] for row in response.json()["rows"]}
    assert sorted(by_index) == [1, 2, 3]
    assert all("maximum of 600000 ms" in errors["value"][0] for errors in by_index.values())
    assert not MetricSample.objects.exists()

    # The good row alone goes in, and the evaluation of the release runs on it.
    assert api_as(oncall).post(URL, rows[:1], format="json").status_code == 201
    guardrails_evaluate()
    assert Evaluation.objects.filter(guardrail=guardrail).exists()
    assert not Evaluation.objects.filter(guardrail=guardrail, outcome="error").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"numerator": 5, "denominator": 10**9 + 1}, "denominator"),
        ({"numerator": 2 * 10**9, "denominator": 3 * 10**9}, "numerator"),
        ({"numerator": 11, "denominator": 10}, "numerator"),
    ],
)
def test_rate_counts_beyond_the_definition_are_the_rows_error(rolling_release, fields, bad_field):
    row = {**sample_row(rolling_release, "error_rate", numerator=0, denominator=0), **fields}
    with pytest.raises(InvalidRows) as caught:
        metric_samples_ingest(rows=[row], enqueue=False)
    assert bad_field in caught.value.as_dict()["rows"][0]["errors"]
    assert not MetricSample.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 10**400, 600_000.5])
def test_gauge_values_that_are_not_finite_or_out_of_range_are_refused(rolling_release, value):
    with pytest.raises(InvalidRows) as caught:
        metric_samples_ingest(rows=[latency_row(rolling_release, value)], enqueue=False)
    assert caught.value.rows[0]["index"] == 0 and "value" in caught.value.rows[0]["errors"]


@pytest.mark.django_db
def test_values_at_the_bounds_are_accepted(rolling_release):
    rows = [
        latency_row(rolling_release, 600_000, hours_ago=3),
        latency_row(rolling_release, 0, hours_ago=4),
        sample_row(rolling_release, "error_rate", numerator=10**9, denominator=10**9),
    ]
    assert metric_samples_ingest(rows=rows, enqueue=False).rows == 3


@pytest.mark.django_db
def test_a_definition_refuses_an_inverted_range():
    from core.errors import DomainValidationError
    from core.service_support import validate_model

    metric = MetricDefinition.objects.get(key="latency_p95_ms")
    metric.min_value, metric.max_value = 10, 5
    with pytest.raises(DomainValidationError):
        validate_model(metric)


# --- concurrency -----------------------------------------------------------------------------------------------


@pytest.fixture
def live_releases(transactional_db: Any) -> list[Any]:
    author = UserFactory(username="ana.author", groups=["Authors"])
    pm = UserFactory(username="pia.pm", groups=["Program managers"])
    solution = SolutionFactory()
    first = put_live(make_release(author=author, solution=solution), program_manager=pm)
    second = put_live(make_release(author=author, solution=SolutionFactory()), program_manager=pm)
    return [first, second]


def _overlapping_rows(releases: list[Any]) -> list[dict[str, Any]]:
    base = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    rows = []
    for release in releases:
        for metric in ("error_rate", "escalation_rate", "fallback_rate"):
            for market in ("US", "DE"):
                for hour in range(20):
                    start = base + timedelta(hours=hour)
                    rows.append(
                        {
                            "release": release.pk,
                            "metric": metric,
                            "market": market,
                            "window_start": start.isoformat(),
                            "window_end": (start + timedelta(hours=1)).isoformat(),
                            "numerator": hour,
                            "denominator": 1000,
                        }
                    )
    return rows


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_four_clients_with_shuffled_overlapping_batches_all_succeed(live_releases):
    """The attack: 4 clients posting shuffled overlapping batches deadlocked (19 of 48 requests answered 500)."""
    rows = _overlapping_rows(live_releases)
    shuffled = []
    for seed in range(4):
        batch = list(rows)
        random.Random(seed).shuffle(batch)
        shuffled.append(batch)
    for _round in range(3):
        # Without retries: only the key order may keep them apart.
        with mock.patch.object(ingestion_module, "INGEST_ATTEMPTS", 1):
            results = run_at_once(
                *[lambda batch=batch: metric_samples_ingest(rows=batch, enqueue=False) for batch in shuffled]
            )
        assert raised(results) == []
        assert all(result.rows == len(rows) for result in results)
    assert MetricSample.objects.count() == len(rows)
    stored = {(s.release_id, s.metric.key, s.market, s.window_start): s.numerator for s in MetricSample.objects.all()}
    assert stored == {
        (row["release"], row["metric"], row["market"], timezone.datetime.fromisoformat(row["window_start"])): row[
            "numerator"
        ]
        for row in rows
    }


def _deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = psycopg.errors.DeadlockDetected("deadlock detected")
    return error


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_deadlock_is_retried_and_the_rows_written_once(live_releases):
    rows = _overlapping_rows(live_releases[:1])[:10]
    real = ingestion_module.upsert_samples
    calls = []

    def flaky(samples: Any) -> None:
        calls.append(1)
        real(samples)  # the rows are written, then the transaction is aborted: the retry must start clean
        if len(calls) == 1:
            raise _deadlock()

    with mock.patch.object(ingestion_module, "upsert_samples", side_effect=flaky):
        assert metric_samples_ingest(rows=rows, enqueue=False).rows == 10
    assert len(calls) == 2
    assert MetricSample.objects.count() == 10


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lasting_deadlock_is_a_json_409_ingest_conflict_not_a_500(live_releases):
    oncall = UserFactory(username="otto.oncall", groups=["On-call"])
    rows = _overlapping_rows(live_releases[:1])[:10]
    with (
        mock.patch.object(ingestion_module, "upsert_samples", side_effect=_deadlock()) as upsert,
        mock.patch.object(ingestion_module.time, "sleep"),
    ):
        response = api_as(oncall).post(URL, rows, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "ingest_conflict"
    assert upsert.call_count == ingestion_module.INGEST_ATTEMPTS
    assert not MetricSample.objects.exists()
    with (
        mock.patch.object(ingestion_module, "upsert_samples", side_effect=_deadlock()),
        pytest.raises(IngestConflict),
    ):
        metric_samples_ingest(rows=rows, enqueue=False)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_other_database_errors_are_not_swallowed_as_conflicts(live_releases):
    rows = _overlapping_rows(live_releases[:1])[:1]
    with (
        mock.patch.object(ingestion_module, "upsert_samples", side_effect=OperationalError("server closed")),
        pytest.raises(OperationalError),
    ):
        metric_samples_ingest(rows=rows, enqueue=False)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        ("0001-01-01T00:00:00+00:00", "0001-01-01T01:00:00+00:00", "window_start"),
        ("9999-12-30T00:00:00+00:00", "9999-12-30T01:00:00+00:00", "window_end"),
        ("2026-01-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00", "window_end"),
    ],
    ids=["year-1", "year-9999", "five-month-window"],
)
def test_nonsense_sample_windows_are_refused_by_row(rolling_release: Any, start: str, end: str, field: str) -> None:
    row = sample_row(rolling_release, "error_rate", numerator=1, denominator=100)
    row.update(window_start=start, window_end=end)
    with pytest.raises(InvalidRows) as refused:
        metric_samples_ingest(rows=[row], enqueue=False)
    assert field in str(refused.value)
    assert not MetricSample.objects.exists()

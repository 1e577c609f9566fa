"""The ingestion fast path and the PostgreSQL staging upsert (issue 13): the quick row check accepts exactly what
the full rules accept and stores the same values; COPY → staging → one set-based upsert writes new rows, updates
changed ones, leaves unchanged ones alone, and keeps concurrent senders of the same keys apart."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import transaction
from django.utils import timezone

from monitoring.api.parsers import parsed_depth
from monitoring.errors import InvalidRows
from monitoring.models import MetricSample
from monitoring.services import ingestion as ingestion_module
from monitoring.services import metric_samples_ingest
from monitoring.services.ingestion import upsert_samples, validate_rows
from tests.concurrency import raised, run_at_once
from tests.conftest import api_as
from tests.factories import SolutionFactory, UserFactory, make_release

from .conftest import put_live, sample_row

URL = "/api/v1/metric-samples/"


def _hours_ago(hours: int) -> Any:
    return (timezone.now() - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)


@pytest.mark.django_db
def test_the_fast_path_stores_what_the_full_rules_store(rolling_release):
    start = _hours_ago(5)
    rows = [
        sample_row(rolling_release, "error_rate", numerator=3, denominator=100),
        sample_row(rolling_release, "error_rate", numerator=3, denominator=100, market="DE", arm="control"),
        sample_row(rolling_release, "error_rate", numerator=0, denominator=0, source="lab", window_start=start),
        {
            **sample_row(rolling_release, "error_rate", numerator=1, denominator=9, window_start=_hours_ago(7)),
            "arm": "",
        },
        {**sample_row(rolling_release, "latency_p95_ms", numerator=0, denominator=0), "value": 850.5},
        {**sample_row(rolling_release, "latency_p95_ms", numerator=0, denominator=0, market="DE"), "value": 12},
    ]
    for row in rows[-2:]:
        del row["numerator"]
    rows[-1]["denominator"] = 40
    now = timezone.now()
    lookups = ingestion_module._Lookups(
        releases={rolling_release.pk: {"id": rolling_release.pk, "markets": rolling_release.markets}},
        metrics={m.key: m for m in ingestion_module.MetricDefinition.objects.all()},
        now=now,
        datetimes={},
    )
    for row in rows:
        fast = ingestion_module._fast_record(row, lookups)
        checked, errors = ingestion_module._checked_record(row, lookups)
        assert errors == {}
        assert fast is not None, row  # the shapes senders use take the fast path
        assert fast == checked
    assert validate_rows(rows, now=now).rows == [ingestion_module._checked_record(r, lookups)[0] for r in rows]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides",
    [
        {"release": "1"},  # a digit string: the full rules accept it
        {"numerator": 3.0, "denominator": 100.0},  # integral floats: counts all the same
        {"units": 10, "sum_x": 3, "sum_y": 100, "sum_xx": 3, "sum_yy": 1000, "sum_xy": 30},
    ],
    ids=["release-as-text", "integral-floats", "unit-sums"],
)
def test_rows_the_fast_path_leaves_to_the_full_rules_are_still_accepted(rolling_release, overrides):
    row = {**sample_row(rolling_release, "error_rate", numerator=3, denominator=100), **overrides}
    if overrides.get("release") == "1":
        row["release"] = str(rolling_release.pk)
    assert metric_samples_ingest(rows=[row], enqueue=False).rows == 1
    stored = MetricSample.objects.get()
    assert (stored.release_id, stored.numerator, stored.denominator) == (rolling_release.pk, 3, 100)
    assert stored.units == overrides.get("units")


@pytest.mark.django_db
def test_a_bad_row_among_good_ones_is_reported_as_before(rolling_release):
    good = sample_row(rolling_release, "error_rate", numerator=3, denominator=100)
    rows = [good, {**good, "market": "XX"}, {**good, "numerator": 101}]
    with pytest.raises(InvalidRows) as refused:
        metric_samples_ingest(rows=rows, enqueue=False)
    assert [bad["index"] for bad in refused.value.rows] == [1, 2]
    assert refused.value.rows[0]["errors"] == {
        "market": [f"Market 'XX' is not one of the release's markets {rolling_release.markets}."]
    }
    assert refused.value.rows[1]["errors"] == {"numerator": ["Must not be above the denominator."]}
    assert not MetricSample.objects.exists()


@pytest.mark.django_db
def test_an_unchanged_resend_writes_nothing_and_a_changed_row_is_updated(rolling_release):
    rows = [
        sample_row(rolling_release, "error_rate", numerator=3, denominator=100),
        sample_row(rolling_release, "error_rate", numerator=5, denominator=100, market="DE"),
    ]
    first = timezone.now() - timedelta(minutes=10)
    metric_samples_ingest(rows=rows, enqueue=False, now=first)
    metric_samples_ingest(rows=rows, enqueue=False, now=first + timedelta(minutes=5))
    # Nothing changed: the rows keep the receipt the evaluation already saw, so no new look is counted.
    assert set(MetricSample.objects.values_list("received_at", flat=True)) == {first}
    later = first + timedelta(minutes=8)
    metric_samples_ingest(rows=[{**rows[0], "numerator": 4}, rows[1]], enqueue=False, now=later)
    stored = {s.market: (s.numerator, s.received_at) for s in MetricSample.objects.all()}
    assert stored == {"US": (4, later), "DE": (5, first)}


@pytest.mark.django_db
def test_several_batches_in_one_transaction_each_write_their_own_rows(rolling_release):
    """The CSV command upserts chunk after chunk in one transaction: the staging table must not replay a chunk."""
    one = validate_rows([sample_row(rolling_release, "error_rate", numerator=1, denominator=10)])
    two = validate_rows([sample_row(rolling_release, "error_rate", numerator=2, denominator=10, market="DE")])
    with transaction.atomic():
        upsert_samples(one)
        upsert_samples(two)
        upsert_samples(one)
    assert sorted(MetricSample.objects.values_list("market", "numerator")) == [("DE", 2), ("US", 1)]


@pytest.mark.django_db
def test_text_that_copy_would_read_as_control_characters_is_stored_as_sent(rolling_release):
    source = "lab\\feed\tone\nline"
    row = sample_row(rolling_release, "error_rate", numerator=1, denominator=10, source=source)
    metric_samples_ingest(rows=[row], enqueue=False)
    assert MetricSample.objects.get().source == source


@pytest.mark.django_db
def test_model_instances_are_still_accepted_by_upsert_samples(rolling_release):
    samples = validate_rows([sample_row(rolling_release, "error_rate", numerator=1, denominator=10)]).as_models()
    with transaction.atomic():
        upsert_samples(samples)
    assert MetricSample.objects.get().numerator == 1


@pytest.fixture
def two_live_releases(transactional_db: Any) -> list[Any]:
    author = UserFactory(username="ana.author", groups=["Authors"])
    pm = UserFactory(username="pia.pm", groups=["Program managers"])
    return [put_live(make_release(author=author, solution=SolutionFactory()), program_manager=pm) for _ in range(2)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_senders_of_the_same_keys_at_once_both_succeed_and_one_batch_wins_whole(two_live_releases):
    base = _hours_ago(30)
    keys = [
        (release, metric, market, base + timedelta(hours=hour))
        for release in two_live_releases
        for metric in ("error_rate", "fallback_rate")
        for market in ("US", "DE")
        for hour in range(12)
    ]

    def batch(numerator: int) -> list[dict[str, Any]]:
        return [
            sample_row(release, metric, market=market, window_start=start, numerator=numerator, denominator=100)
            for release, metric, market, start in keys
        ]

    for _round in range(3):
        with mock.patch.object(ingestion_module, "INGEST_ATTEMPTS", 1):  # no retries: key order alone must do
            results = run_at_once(
                lambda: metric_samples_ingest(rows=batch(7), enqueue=False),
                lambda: metric_samples_ingest(rows=list(reversed(batch(9))), enqueue=False),
            )
        assert raised(results) == []
        assert MetricSample.objects.count() == len(keys)
        assert set(MetricSample.objects.values_list("numerator", flat=True)) in ({7}, {9})


def test_parsed_depth_counts_like_the_bracket_scan():
    from core.api.parsers import json_nesting_depth

    documents = [
        [{"a": 1}, {"b": "[[[{{{"}],
        [{"a": [1, [2, {"c": []}]]}],
        [],
        [1, "x", {"k": {}}],
        {"rows": [[[]]]},
    ]
    for document in documents:
        raw = json.dumps(document).encode()
        assert parsed_depth(document, raw) == parsed_depth(document) == json_nesting_depth(raw), document


@pytest.mark.django_db
def test_the_bulk_parser_keeps_the_api_answers(rolling_release, oncall, settings):
    settings.API_JSON_MAX_DEPTH = 4
    row = sample_row(rolling_release, "error_rate", numerator=1, denominator=10)
    deep = api_as(oncall).post(URL, json.dumps([{**row, "arm": [[[["x"]]]]}]), content_type="application/json")
    assert deep.status_code == 400
    assert deep.json()["detail"] == "JSON nested 6 levels deep; at most 4 levels are accepted."
    broken = api_as(oncall).post(URL, b'[{"release": ', content_type="application/json")
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("JSON parse error")
    ok = api_as(oncall).post(URL, json.dumps([row]), content_type="application/json")
    assert ok.status_code == 201, ok.content

"""Bulk ingestion: idempotent upsert, all or nothing, every bad row listed, 413, CSV, broker outages."""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from kombu.exceptions import OperationalError

from monitoring.models import Evaluation, Incident, MetricSample
from monitoring.services import guardrails_evaluate, metric_samples_ingest
from tests.conftest import api_as

from .conftest import make_guardrail, sample_row

pytestmark = pytest.mark.django_db
URL = "/api/v1/metric-samples/"


def test_post_a_list_stores_it_and_resending_updates_in_place(
    rolling_release, oncall, django_capture_on_commit_callbacks
):
    client = api_as(oncall)
    rows = [
        sample_row(rolling_release, "error_rate", numerator=5, denominator=1000),
        sample_row(rolling_release, "error_rate", numerator=7, denominator=900, market="DE"),
        sample_row(rolling_release, "error_rate", numerator=9, denominator=800, arm="control"),
    ]
    with (
        mock.patch("monitoring.tasks.evaluate_releases.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(URL, rows, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"rows": 3, "releases": [rolling_release.pk]}
    delay.assert_called_once_with([rolling_release.pk])
    rows[0]["numerator"] = 6
    response = client.post(URL, rows, format="json")
    assert response.status_code == 201
    assert MetricSample.objects.count() == 3
    us = MetricSample.objects.get(market="US", arm="treatment")
    assert (us.numerator, us.denominator, us.metric_version) == (6, 1000, 1)


def test_every_bad_row_is_listed_by_index_and_nothing_is_written(rolling_release, oncall):
    good = sample_row(rolling_release, "error_rate", numerator=5, denominator=1000)
    start = timezone.now() - timedelta(hours=5)
    rows = [
        good,
        {**good, "release": 999_999},
        {**good, "metric": "happiness"},
        {**good, "window_end": good["window_start"]},
        {**good, "numerator": 2000},
        {**good, "numerator": -1, "window_start": start.isoformat()},
        {**good, "denominator": "many", "window_start": (start - timedelta(hours=1)).isoformat()},
        {**good, "numerator": 1.5, "window_start": (start - timedelta(hours=2)).isoformat()},
        good,  # the same key twice
        {**good, "market": "FR", "window_start": (start - timedelta(hours=3)).isoformat()},
        {**good, "window_start": "2026-01-01T00:00:00"},  # naive
        "not an object",
    ]
    response = api_as(oncall).post(URL, rows, format="json")
    assert response.status_code == 400
    body = response.json()
    by_index = {row["index"]: row["errors"] for row in body["rows"]}
    assert sorted(by_index) == list(range(1, 12))
    assert "release" in by_index[1]
    assert "metric" in by_index[2]
    assert "window_end" in by_index[3]
    assert "numerator" in by_index[4]
    assert "numerator" in by_index[5]
    assert "denominator" in by_index[6]
    assert "numerator" in by_index[7]
    assert "non_field_errors" in by_index[8]
    assert "market" in by_index[9]
    assert "window_start" in by_index[10]
    assert "non_field_errors" in by_index[11]
    assert not MetricSample.objects.exists()


def test_nan_and_infinity_are_refused(rolling_release, oncall):
    body = json.dumps([sample_row(rolling_release, "latency_p95_ms", numerator=0, denominator=0)])
    body = body.replace('"numerator": 0', '"value": NaN')
    response = api_as(oncall).post(URL, body, content_type="application/json")
    assert response.status_code == 400
    row = sample_row(rolling_release, "latency_p95_ms", numerator=0, denominator=0)
    del row["numerator"], row["denominator"]
    for bad in (float("nan"), float("inf")):
        with pytest.raises(Exception) as caught:
            metric_samples_ingest(rows=[{**row, "value": bad}], enqueue=False)
        assert caught.value.as_dict()["rows"][0]["errors"]["value"]
    assert not MetricSample.objects.exists()


def test_more_than_ten_thousand_rows_is_413(rolling_release, oncall):
    rows = [{"release": rolling_release.pk}] * 10_001
    response = api_as(oncall).post(URL, rows, format="json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_many_rows"


def test_not_a_list_is_400(oncall):
    response = api_as(oncall).post(URL, {"release": 1}, format="json")
    assert response.status_code == 400


def test_outsiders_and_auditors_cannot_post(rolling_release, outsider, auditor):
    rows = [sample_row(rolling_release, "error_rate", numerator=5, denominator=1000)]
    assert api_as(outsider).post(URL, rows, format="json").status_code == 403
    assert api_as(auditor).post(URL, rows, format="json").status_code == 403
    assert api_as(auditor).get(URL).status_code == 200


def test_ten_thousand_rows_validate_and_write_in_a_handful_of_queries(
    author, solution, no_default_guardrails, django_assert_max_num_queries
):
    from tests.factories import make_release

    from .conftest import put_live

    release = put_live(make_release(author=author, solution=solution))
    start = timezone.now() - timedelta(days=30)
    rows = [
        sample_row(
            release,
            "error_rate",
            numerator=i % 50,
            denominator=1000,
            window_start=start + timedelta(minutes=5 * (i // 2)),
            market=("US", "DE")[i % 2],
        )
        for i in range(10_000)
    ]
    # Two reads (releases, metrics); on PostgreSQL the session's staging table (CREATE … IF NOT EXISTS), its COPY
    # and one set-based upsert from it; plus the transaction's savepoint bookkeeping. None of it grows with rows.
    with django_assert_max_num_queries(7):
        result = metric_samples_ingest(rows=rows, enqueue=False)
    assert result.rows == 10_000
    assert MetricSample.objects.count() == 10_000


def test_broker_down_during_ingest_keeps_the_samples_and_the_beat_catches_up(
    rolling_release, error_rate, oncall, django_capture_on_commit_callbacks
):
    make_guardrail(rolling_release, error_rate)
    rows = [sample_row(rolling_release, "error_rate", numerator=300, denominator=1000)]
    with (
        mock.patch(
            "monitoring.tasks.evaluate_releases.delay", side_effect=OperationalError("Connection refused")
        ) as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api_as(oncall).post(URL, rows, format="json")
    assert response.status_code == 201
    assert delay.called
    assert MetricSample.objects.count() == 1
    assert not Evaluation.objects.exists()
    # The broker is back: the every-minute cycle evaluates every live release, touched or not.
    guardrails_evaluate()
    assert Incident.objects.count() == 1


def test_list_endpoint_query_count(rolling_release, auditor, django_assert_max_num_queries):
    start = timezone.now() - timedelta(days=1)
    metric_samples_ingest(
        rows=[
            sample_row(
                rolling_release, "error_rate", numerator=1, denominator=10, window_start=start + timedelta(hours=i)
            )
            for i in range(20)
        ],
        enqueue=False,
    )
    client = api_as(auditor)
    with django_assert_max_num_queries(8):
        response = client.get(URL, {"release": rolling_release.pk, "metric": "error_rate"})
    assert response.status_code == 200
    assert response.json()["count"] == 20


def _csv(tmp_path, lines):
    path = tmp_path / "samples.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_ingest_metrics_command(rolling_release, tmp_path, capsys):
    start = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=1)
    header = "release,metric,market,arm,window_start,window_end,numerator,denominator,value"
    path = _csv(
        tmp_path,
        [
            header,
            f"{rolling_release.pk},error_rate,US,treatment,{start.isoformat()},{end.isoformat()},3,100,",
            f"{rolling_release.pk},latency_p95_ms,US,,{start.isoformat()},{end.isoformat()},,,850.5",
        ],
    )
    with mock.patch("monitoring.tasks.evaluate_releases.delay"):
        call_command("ingest_metrics", path)
    assert MetricSample.objects.count() == 2
    assert MetricSample.objects.get(metric__key="latency_p95_ms").value == 850.5
    assert "Stored 2 sample(s)" in capsys.readouterr().out


def test_ingest_metrics_command_reports_bad_lines_and_writes_nothing(rolling_release, tmp_path):
    start = (timezone.now() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(hours=1)
    header = "release,metric,market,window_start,window_end,numerator,denominator"
    path = _csv(
        tmp_path,
        [
            header,
            f"{rolling_release.pk},error_rate,US,{start.isoformat()},{end.isoformat()},3,100",
            f"{rolling_release.pk},error_rate,DE,{start.isoformat()},{end.isoformat()},nan,100",
        ],
    )
    with pytest.raises(CommandError, match="line 3"):
        call_command("ingest_metrics", path, "--no-enqueue")
    assert not MetricSample.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"arm": [None, None]}, "arm"),
        ({"arm": {"x": 1}}, "arm"),
        ({"numerator": 2**70, "denominator": 2**71}, "numerator"),
        ({"denominator": 10**30}, "denominator"),
        ({"release": 2**80}, "release"),
        ({"release": -3}, "release"),
    ],
)
def test_inputs_found_by_fuzzing_are_bad_rows_not_errors(rolling_release, oncall, overrides, field):
    """Each of these answered 500 to schemathesis once."""
    row = {**sample_row(rolling_release, "error_rate", numerator=1, denominator=10), **overrides}
    response = api_as(oncall).post(URL, [row], format="json")
    assert response.status_code == 400, response.data
    assert field in response.data["rows"][0]["errors"]
    assert not MetricSample.objects.exists()

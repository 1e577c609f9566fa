"""Contact-reason ingestion: the metric-sample contract — idempotent upsert, all or nothing, every bad row listed
by index, 10,000 rows, 413 beyond, CSV command, roles."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from opportunities.models import ContactReasonVolume
from tests.conftest import api_as

from .conftest import volume_row, weeks_ago

pytestmark = pytest.mark.django_db
URL = "/api/v1/contact-reason-volumes/"


def test_post_a_list_stores_it_and_resending_updates_in_place(oncall, solution):
    client = api_as(oncall)
    rows = [
        volume_row(),
        volume_row(market="DE"),
        volume_row(solution=solution.key, conversations=400, handed=100, abandoned=20),
        volume_row(arm="control", conversations=100, handed=70, abandoned=5),
    ]
    response = client.post(URL, rows, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"rows": 4, "contact_reasons": ["refund-status"]}
    rows[0]["handed_to_human"] = 650
    rows[2]["conversations"] = 500
    response = client.post(URL, rows, format="json")
    assert response.status_code == 201
    assert ContactReasonVolume.objects.count() == 4
    us = ContactReasonVolume.objects.get(market="US", served_by="", arm="all")
    assert (us.conversations, us.handed_to_human) == (1000, 650)
    served = ContactReasonVolume.objects.get(served_by=solution.key)
    assert (served.conversations, served.solution_id) == (500, solution.pk)
    listed = client.get(URL, {"market": "US", "solution": solution.key}).json()
    assert [row["conversations"] for row in listed["results"]] == [500]


def test_every_bad_row_is_listed_by_index_and_nothing_is_written(program_manager):
    good = volume_row()
    rows = [
        good,
        {**good, "contact_reason": "Refund Status!"},
        {**good, "market": ""},
        {**good, "audience": "aliens"},
        {**good, "window_end": good["window_start"]},
        {**good, "handed_to_human": 990, "abandoned": 20},  # more handled than arrived
        {**good, "conversations": -1},
        {**good, "conversations": 1.5},
        {**good, "avg_handle_minutes": "ten"},
        {**good, "solution": "no-such-solution"},
        {**good, "arm": "placebo"},
        {**good, "csat_responses": 10, "csat_positive": 11},
        good,  # the same natural key twice
        {**good, "window_start": "2026-01-01T00:00:00"},  # naive
        {**good, "avg_handle_minutes": float("1e9")},
        "not an object",
    ]
    response = api_as(program_manager).post(URL, rows, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_rows"
    by_index = {row["index"]: row["errors"] for row in body["rows"]}
    assert sorted(by_index) == list(range(1, 16))
    expected = {
        1: "contact_reason",
        2: "market",
        3: "audience",
        4: "window_end",
        5: "conversations",
        6: "conversations",
        7: "conversations",
        8: "avg_handle_minutes",
        9: "solution",
        10: "arm",
        11: "csat_positive",
        12: "non_field_errors",
        13: "window_start",
        14: "avg_handle_minutes",
        15: "non_field_errors",
    }
    for index, field in expected.items():
        assert field in by_index[index], (index, by_index[index])
    assert ContactReasonVolume.objects.count() == 0


def test_ten_thousand_rows_in_one_request_and_not_one_more(oncall):
    rows = [
        volume_row(reason=f"reason-{i % 100}", market=f"M{i // 100 % 10}", start=weeks_ago(1 + i // 1000))
        for i in range(10_000)
    ]
    response = api_as(oncall).post(URL, rows, format="json")
    assert response.status_code == 201, response.content[:500]
    assert ContactReasonVolume.objects.count() == 10_000
    too_many = api_as(oncall).post(URL, [*rows, volume_row(reason="one-more")], format="json")
    assert too_many.status_code == 413
    assert too_many.json()["code"] == "too_many_rows"
    assert not ContactReasonVolume.objects.filter(contact_reason="one-more").exists()


def test_only_program_managers_and_oncall_may_send_data_and_everyone_with_a_role_reads(author, auditor, outsider):
    assert api_as(author).post(URL, [volume_row()], format="json").status_code == 403
    assert api_as(auditor).post(URL, [volume_row()], format="json").status_code == 403
    assert api_as(auditor).get(URL).status_code == 200
    assert api_as(outsider).get(URL).status_code == 403
    assert api_as(author).post(URL, {"not": "a list"}, format="json").status_code in (400, 403)
    assert ContactReasonVolume.objects.count() == 0


def test_a_body_that_is_not_a_list_is_a_400(oncall):
    response = api_as(oncall).post(URL, {"contact_reason": "x"}, format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_csv_command_is_all_or_nothing_and_idempotent(tmp_path):
    header = "contact_reason,market,audience,window_start,window_end,conversations,handed_to_human,abandoned,"
    header += "avg_handle_minutes,solution\n"
    start, end = weeks_ago(1).isoformat(), weeks_ago(0).isoformat()
    good = tmp_path / "good.csv"
    good.write_text(
        header + f"refund-status,US,buyers,{start},{end},1000,600,50,9.5,\n"
        f"refund-status,DE,buyers,{start},{end},500,300,20,11,\n"
    )
    call_command("ingest_contact_reasons", str(good))
    call_command("ingest_contact_reasons", str(good))
    assert ContactReasonVolume.objects.count() == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(
        header + f"order-tracking,US,buyers,{start},{end},1000,600,50,9.5,\norder-tracking,US,buyers,{start},{end},"
        "10,600,50,9.5,\n"
    )
    with pytest.raises(CommandError, match="line 3"):
        call_command("ingest_contact_reasons", str(bad))
    assert not ContactReasonVolume.objects.filter(contact_reason="order-tracking").exists()
    missing = tmp_path / "missing.csv"
    missing.write_text("contact_reason,market\nrefund-status,US\n")
    with pytest.raises(CommandError, match="Missing column"):
        call_command("ingest_contact_reasons", str(missing))

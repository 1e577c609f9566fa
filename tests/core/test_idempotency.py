"""A retried POST with the same Idempotency-Key gets the first answer and acts once."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from core.models import AuditEvent, IdempotencyRecord
from tests.concurrency import run_at_once

pytestmark = pytest.mark.django_db


def _session_client(user: Any) -> APIClient:
    # A real login: the key is scoped by the user the API authenticates, as it is for a token.
    client = APIClient()
    client.force_login(user)
    return client


def _submit(client: APIClient, release_id: int, key: str) -> Any:
    return client.post(f"/api/v1/releases/{release_id}/submit/", {}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_retried_submit_with_same_key_returns_first_answer_and_acts_once(author: Any, draft_release: Any) -> None:
    client = _session_client(author)
    first = _submit(client, draft_release.pk, "submit-1")
    second = _submit(client, draft_release.pk, "submit-1")
    assert first.status_code == 200, first.content
    assert second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(release_id=draft_release.pk, action="release.submit").count() == 1


def test_without_a_key_a_retry_acts_again_and_is_refused(author: Any, draft_release: Any) -> None:
    client = _session_client(author)
    assert client.post(f"/api/v1/releases/{draft_release.pk}/submit/", {}, format="json").status_code == 200
    again = client.post(f"/api/v1/releases/{draft_release.pk}/submit/", {}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "illegal_transition"


def test_key_reused_for_a_different_request_is_refused(author: Any, draft_release: Any) -> None:
    client = _session_client(author)
    assert _submit(client, draft_release.pk, "k").status_code == 200
    other = client.post(
        f"/api/v1/releases/{draft_release.pk}/cancel/", {"reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


def test_a_refusal_is_replayed_too(author: Any, draft_release: Any, program_manager: Any) -> None:
    # The first answer is the answer, whatever it was: a retry never turns a 409 into an action.
    client = _session_client(program_manager)
    first = client.post(
        f"/api/v1/releases/{draft_release.pk}/start-rollout/", {}, format="json", HTTP_IDEMPOTENCY_KEY="r"
    )
    assert first.status_code == 409
    assert (
        client.post(
            f"/api/v1/releases/{draft_release.pk}/start-rollout/", {}, format="json", HTTP_IDEMPOTENCY_KEY="r"
        ).json()
        == first.json()
    )


def test_keys_are_per_user(author: Any, second_author: Any, solution: Any) -> None:
    from tests.factories import make_release

    mine = make_release(author=author, solution=solution)
    theirs = make_release(author=second_author, solution=solution)
    assert _submit(_session_client(author), mine.pk, "same").status_code == 200
    assert _submit(_session_client(second_author), theirs.pk, "same").status_code == 200
    assert IdempotencyRecord.objects.filter(key="same").count() == 2


def test_an_empty_or_huge_key_is_a_clear_400(author: Any, draft_release: Any) -> None:
    client = _session_client(author)
    response = _submit(client, draft_release.pk, "x" * 300)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_act_once(author: Any, draft_release: Any) -> None:
    def attempt() -> int:
        return _submit(_session_client(author), draft_release.pk, "burst").status_code

    codes = run_at_once(*[attempt for _ in range(8)])
    assert all(isinstance(code, int) for code in codes), codes
    assert set(codes) <= {200, 409}
    assert 200 in codes
    assert AuditEvent.objects.filter(release_id=draft_release.pk, action="release.submit").count() == 1

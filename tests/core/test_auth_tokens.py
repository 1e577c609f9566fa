"""Login throttling and lockout, and the token lifecycle: expiry, rotation, revocation, password change."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from core.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
ROTATE = "/api/v1/auth/token/rotate/"
REVOKE = "/api/v1/auth/token/revoke/"
RELEASES = "/api/v1/releases/"
PASSWORD = "pass-1234"


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    # Throttle counters live in the cache, which outlives a test's database rollback.
    cache.clear()
    yield
    cache.clear()


def _obtain(user, password: str = PASSWORD, client: APIClient | None = None):
    return (client or APIClient()).post(TOKEN, {"username": user.username, "password": password})


def _client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _key(user) -> str:
    response = _obtain(user)
    assert response.status_code == 200, response.content
    return response.data["token"]


class TestThrottleAndLockout:
    def test_two_hundred_wrong_passwords_on_the_token_endpoint_get_429(self, author, settings):
        settings.API_TOKEN_THROTTLE_RATE = "10/minute"
        settings.AXES_FAILURE_LIMIT = 1000  # the throttle alone, not the lockout
        statuses = [_obtain(author, "wrong").status_code for _ in range(12)]
        assert statuses[:10] == [400] * 10
        assert statuses[10:] == [429, 429]
        response = _obtain(author)  # the right password is throttled too: the client is out of attempts
        assert response.status_code == 429
        body = json.loads(response.content)
        assert body["code"] == "throttled" and body["retry_after"] > 0
        assert response["Retry-After"]

    def test_wrong_admin_logins_lock_the_client_out(self, superuser, settings):
        settings.AXES_FAILURE_LIMIT = 10
        client = Client()
        for _ in range(9):
            response = client.post("/admin/login/", {"username": superuser.username, "password": "wrong"})
            assert response.status_code == 200  # the login form again, with an error
        response = client.post("/admin/login/", {"username": superuser.username, "password": "wrong"})
        assert response.status_code == 429
        # Locked out: even the right password is refused, with a page that says so (never a 500).
        response = client.post("/admin/login/", {"username": superuser.username, "password": PASSWORD})
        assert response.status_code == 429
        assert b"Too many failed login attempts" in response.content
        assert not response.wsgi_request.user.is_authenticated

    def test_token_endpoint_lockout_is_json(self, author, settings):
        settings.AXES_FAILURE_LIMIT = 3
        for _ in range(2):
            assert _obtain(author, "wrong").status_code == 400
        response = _obtain(author, "wrong")
        assert response.status_code == 429
        assert json.loads(response.content)["code"] == "locked_out"
        assert _obtain(author).status_code == 429

    def test_force_login_and_successful_logins_are_not_counted(self, author, settings):
        settings.AXES_FAILURE_LIMIT = 2
        assert _obtain(author, "wrong").status_code == 400
        assert _obtain(author).status_code == 200  # a success resets the count
        assert _obtain(author, "wrong").status_code == 400
        client = Client()
        client.force_login(author)
        assert client.get("/admin/").status_code == 200


class TestTokenLifecycle:
    def test_token_response_has_expiry_and_the_token_works(self, author, settings):
        response = _obtain(author)
        assert response.status_code == 200
        expires_at = datetime.fromisoformat(json.loads(response.content)["expires_at"].replace("Z", "+00:00"))
        expected = timezone.now() + timedelta(hours=settings.API_TOKEN_TTL_HOURS)
        assert abs((expires_at - expected).total_seconds()) < 60
        assert _client_with(response.data["token"]).get(RELEASES).status_code == 200
        # Only the hash is stored: the key cannot be read back from the database.
        assert not ApiToken.objects.filter(key_hash=response.data["token"]).exists()

    def test_expired_token_is_refused_with_401(self, author):
        key = _key(author)
        ApiToken.objects.filter(user=author).update(expires_at=timezone.now() - timedelta(seconds=1))
        response = _client_with(key).get(RELEASES)
        assert response.status_code == 401
        assert "expired" in json.loads(response.content)["detail"]

    def test_password_change_revokes_every_token(self, author):
        first, second = _key(author), _key(author)
        author.set_password("a-new-password-5678")
        author.save()
        for key in (first, second):
            assert _client_with(key).get(RELEASES).status_code == 401
        assert not ApiToken.objects.filter(user=author, revoked_at__isnull=True).exists()
        assert set(ApiToken.objects.filter(user=author).values_list("revoked_reason", flat=True)) == {
            "password_changed"
        }
        assert _obtain(author, "a-new-password-5678").status_code == 200

    def test_rotation_issues_a_new_token_and_revokes_the_old(self, author):
        old = _key(author)
        response = _client_with(old).post(ROTATE)
        assert response.status_code == 200
        new = response.data["token"]
        assert new != old and response.data["expires_at"]
        assert _client_with(old).get(RELEASES).status_code == 401
        assert _client_with(new).get(RELEASES).status_code == 200

    def test_revoke_endpoint_revokes_the_presented_token(self, author):
        key, other = _key(author), _key(author)
        response = _client_with(key).post(REVOKE)
        assert response.status_code == 200 and response.data == {"revoked": 1}
        assert _client_with(key).get(RELEASES).status_code == 401
        assert _client_with(other).get(RELEASES).status_code == 200

    def test_revoke_all_revokes_every_token_of_the_user(self, author, second_author):
        key, other, someone_else = _key(author), _key(author), _key(second_author)
        response = _client_with(key).post(REVOKE, {"all": True}, format="json")
        assert response.data == {"revoked": 2}
        assert _client_with(other).get(RELEASES).status_code == 401
        assert _client_with(someone_else).get(RELEASES).status_code == 200

    def test_revoke_tokens_command(self, author, second_author, program_manager):
        a, b, c = _key(author), _key(second_author), _key(program_manager)
        call_command("revoke_tokens", "--user", author.username)
        assert _client_with(a).get(RELEASES).status_code == 401
        assert _client_with(b).get(RELEASES).status_code == 200
        call_command("revoke_tokens", "--all")
        assert _client_with(b).get(RELEASES).status_code == 401
        assert _client_with(c).get(RELEASES).status_code == 401

    def test_unknown_token_is_401(self, author):
        assert _client_with("0" * 40).get(RELEASES).status_code == 401

    def test_issue_and_revocation_are_audited(self, author):
        key = _key(author)
        _client_with(key).post(REVOKE)
        actions = list(AuditEvent.objects.filter(object_type="core.apitoken").values_list("action", flat=True))
        assert actions == ["auth.token_issued", "auth.token_revoked"]
        assert key not in json.dumps(list(AuditEvent.objects.values("data", "reason")))

"""``Idempotency-Key`` on every POST of the API: a retried request returns the first answer without acting
twice (DESIGN: transitions are compare-and-set, retries are safe).

The first request with a key claims it by inserting a row (committed at once, so a concurrent retry sees it);
when the view answers, the row keeps the status and body. A retry with the same key and the same request gets
that answer back; with a different request, 422; while the first is still running, 409. A server error
releases the key so the retry acts. Keys are kept for ``IDEMPOTENCY_KEY_TTL``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.settings import api_settings

from .models import IdempotencyRecord

HEADER = "HTTP_IDEMPOTENCY_KEY"
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


def _fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() if request.method else b"")
    digest.update(b"\0" + request.get_full_path().encode() + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _authenticated_user(request: HttpRequest) -> Any:
    """The API authenticates inside the view; the key is scoped by user, so authenticate the same way here."""
    classes: list[Any] = list(api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    authenticators = [cls() for cls in classes]
    try:
        user = Request(request, authenticators=authenticators).user
    except Exception:  # a failed authentication is the view's to answer (401)
        return None
    return user if getattr(user, "is_authenticated", False) else None


def _problem(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


class IdempotencyKeyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.META.get(HEADER)
        if key is None or request.method != "POST" or not request.path.startswith("/api/"):
            return self.get_response(request)
        key = key.strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            return _problem(
                400, "invalid_idempotency_key", f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters."
            )
        user = _authenticated_user(request)
        if user is None:
            return self.get_response(request)
        fingerprint = _fingerprint(request)
        claimed = self._claim(user=user, key=key, fingerprint=fingerprint, request=request)
        if isinstance(claimed, HttpResponse):
            return claimed
        response = self.get_response(request)
        if response.status_code >= 500:
            IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
            return response
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        IdempotencyRecord.objects.filter(pk=claimed.pk).update(
            status_code=response.status_code,
            content_type=response.get("Content-Type", ""),
            body=response.content.decode("utf-8", errors="replace"),
        )
        return response

    def _claim(
        self, *, user: Any, key: str, fingerprint: str, request: HttpRequest
    ) -> IdempotencyRecord | HttpResponse:
        now = timezone.now()
        for _ in range(2):
            try:
                with transaction.atomic():
                    return IdempotencyRecord.objects.create(
                        user=user,
                        key=key,
                        request_fingerprint=fingerprint,
                        method=request.method or "POST",
                        path=request.path[:500],
                        created_at=now,
                    )
            except IntegrityError:
                existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
                if existing is None:
                    continue  # released by a failed first attempt in the meantime: claim it now
                if existing.created_at < now - IDEMPOTENCY_KEY_TTL:
                    existing.delete()
                    continue
                return self._replay(existing, fingerprint)
        return _problem(409, "idempotency_key_in_use", "This Idempotency-Key is being used by another request.")

    @staticmethod
    def _replay(existing: IdempotencyRecord, fingerprint: str) -> HttpResponse:
        if existing.request_fingerprint != fingerprint:
            return _problem(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a new request.",
            )
        if existing.status_code is None:
            return _problem(
                409, "idempotency_key_in_use", "The first request with this Idempotency-Key is still running; retry."
            )
        response = HttpResponse(existing.body, status=existing.status_code, content_type=existing.content_type)
        response["Idempotent-Replayed"] = "true"
        return response

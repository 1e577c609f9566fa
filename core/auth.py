"""API tokens with a lifetime: issue, authenticate, rotate, revoke; and the login throttles.

A token is refused (401) once expired, revoked, or issued under a password the user no longer has. Every issue
and revocation is written to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from core.audit import audit_record

from .models import ApiToken

if TYPE_CHECKING:
    from core.actors import Actor

KEYWORD = "Token"
# How often last_used_at is written: per request would turn every API read into a write.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown once; only its hash is stored


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def password_fingerprint(user: Actor) -> str:
    # Keyed, so the fingerprint says nothing about the password hash to someone who reads the token table.
    return hmac.new(settings.SECRET_KEY.encode(), (user.password or "").encode(), hashlib.sha256).hexdigest()


def token_lifetime() -> timedelta:
    return timedelta(hours=settings.API_TOKEN_TTL_HOURS)


def issue_api_token(*, user: Actor, reason: str = "login") -> IssuedToken:
    """A new token for ``user``, valid for ``API_TOKEN_TTL_HOURS``."""
    key = secrets.token_hex(20)
    now = timezone.now()
    with transaction.atomic():
        token = ApiToken.objects.create(
            key_hash=hash_key(key),
            key_prefix=key[:8],
            user=user,
            created_at=now,
            expires_at=now + token_lifetime(),
            password_fingerprint=password_fingerprint(user),
        )
        audit_record(
            actor=user,
            action="auth.token_issued",
            obj=token,
            reason=reason,
            data={"key_prefix": token.key_prefix, "expires_at": token.expires_at.isoformat()},
        )
    return IssuedToken(token=token, key=key)


def revoke_api_token(*, token: ApiToken, actor: Actor | None, reason: str) -> bool:
    """Revoke one token; False if it was already revoked (revoking twice writes nothing)."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_reason=reason
        )
        if updated:
            token.refresh_from_db(fields=["revoked_at", "revoked_reason"])
            audit_record(
                actor=actor,
                action="auth.token_revoked",
                obj=token,
                reason=reason,
                data={"key_prefix": token.key_prefix, "user": token.user_id},
            )
    return bool(updated)


def revoke_user_tokens(*, user: Actor, actor: Actor | None, reason: str) -> int:
    """Revoke every live token of ``user``; returns how many."""
    with transaction.atomic():
        live = list(ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True))
        count = sum(revoke_api_token(token=token, actor=actor, reason=reason) for token in live)
        if count:
            audit_record(
                actor=actor,
                action="auth.user_tokens_revoked",
                obj=user,
                reason=reason,
                data={"count": count},
            )
    return count


def revoke_all_tokens(*, actor: Actor | None, reason: str) -> int:
    """Revoke every live token of every user (a suspected leak); returns how many."""
    user_model = get_user_model()
    total = 0
    for user in user_model.objects.filter(api_tokens__revoked_at__isnull=True).distinct().order_by("pk"):
        total += revoke_user_tokens(user=user, actor=actor, reason=reason)
    return total


def rotate_api_token(*, token: ApiToken) -> IssuedToken:
    """A fresh token for the token's user; the presented one is revoked in the same transaction."""
    with transaction.atomic():
        issued = issue_api_token(user=token.user, reason="rotation")
        revoke_api_token(token=token, actor=token.user, reason="rotated")
    return issued


class ExpiringTokenAuthentication(BaseAuthentication):
    """``Authorization: Token <key>``; refuses expired, revoked and pre-password-change tokens with a 401."""

    keyword = KEYWORD

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: send 'Token <key>'.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the key is not text.") from None
        return self.authenticate_key(key)

    def authenticate_key(self, key: str) -> tuple[Any, ApiToken]:
        token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Token revoked; obtain a new one.")
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed("Token expired; obtain a new one.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        if not hmac.compare_digest(token.password_fingerprint, password_fingerprint(token.user)):
            # The password changed since the token was issued: whoever held the old password may hold the token.
            revoke_user_tokens(user=token.user, actor=None, reason="password_changed")
            raise exceptions.AuthenticationFailed("Token revoked by a password change; obtain a new one.")
        if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A 401 (not 403) with WWW-Authenticate tells clients to log in again.
        return self.keyword


class ExpiringTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "core.auth.ExpiringTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` from POST /api/v1/auth/token/; expires, rotate or revoke it.",
        }


class TokenObtainThrottle(SimpleRateThrottle):
    """Password guesses against the token endpoint, per client address (``API_TOKEN_THROTTLE_RATE``)."""

    scope = "auth_token"

    def get_rate(self) -> str | None:
        # Read from settings on each request (not frozen at import), so deployments and tests can change it.
        return settings.API_TOKEN_THROTTLE_RATE or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class RequestAxesBackend(AxesStandaloneBackend):
    """django-axes' lockout check for every login that comes with a request (admin login, token endpoint).

    Code that authenticates without a request (Django's test client ``login()``, scripts) has no client to
    lock out; axes would raise, so this backend steps aside and the next backend checks the password.
    """

    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class RolePermissionBackend(ModelBackend):
    """Django's model backend, reading a user's permissions in one query instead of two.

    ``ModelBackend`` reads the user's own permissions and their groups' in two queries, once per request (the
    user object is new each request): on a small API read they were two of its seven queries. Both sets are
    the union of the same two joins, so one ``UNION`` answers ``get_all_permissions`` with the same set;
    ``get_user_permissions`` and ``get_group_permissions`` are still the model backend's own.
    """

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            names = ("content_type__app_label", "codename")
            if user_obj.is_superuser:
                permissions = Permission.objects.values_list(*names)
            else:
                # ``order_by()``: Permission's default ordering is not allowed inside a UNION on SQLite.
                permissions = Permission.objects.filter(user=user_obj).order_by().values_list(*names)
                permissions = permissions.union(
                    Permission.objects.filter(group__user=user_obj).order_by().values_list(*names)
                )
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in permissions}
        return user_obj._perm_cache  # type: ignore[no-any-return]


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """Too many failed logins from this client: JSON under /api/, a page elsewhere; 429 either way."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60) if settings.AXES_COOLOFF_TIME else None
    detail = (
        f"Too many failed login attempts; try again in {minutes} minutes."
        if minutes
        else "Too many failed login attempts; ask an administrator to unlock the account."
    )
    if request.path.startswith("/api/"):
        return JsonResponse({"code": "locked_out", "detail": detail}, status=429)
    response = TemplateResponse(request, "core/lockout.html", {"detail": detail}, status=429)
    return response.render()

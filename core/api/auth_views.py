"""Token endpoints: obtain (throttled, and locked out by django-axes after repeated failures), rotate, revoke."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import (
    ExpiringTokenAuthentication,
    IssuedToken,
    TokenObtainThrottle,
    issue_api_token,
    revoke_api_token,
    revoke_user_tokens,
    rotate_api_token,
)
from core.models import ApiToken

_TokenResponse = inline_serializer(
    "TokenResponse", fields={"token": serializers.CharField(), "expires_at": serializers.DateTimeField()}
)


def _token_response(issued: IssuedToken, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response({"token": issued.key, "expires_at": issued.token.expires_at}, status=status_code)


def _presented_token(request: Request) -> ApiToken:
    if not isinstance(request.auth, ApiToken):
        # Session-authenticated callers have no token to rotate or revoke.
        raise serializers.ValidationError({"token": ["Authenticate with 'Authorization: Token <key>'."]})
    return request.auth


class ObtainTokenView(APIView):
    """Exchange a username and password for an API token (``Authorization: Token <key>``) and its expiry."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenObtainThrottle]

    @extend_schema(request=AuthTokenSerializer, responses={200: _TokenResponse})
    def post(self, request: Request) -> Response:
        # django-axes marks a locked-out login on the request it is given, and its middleware (which sees only
        # Django's HttpRequest, not DRF's wrapper) turns that mark into the lockout answer.
        serializer = AuthTokenSerializer(data=request.data, context={"request": request._request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        # A token is a login: the signal records last_login and lets django-axes clear this client's failures.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return _token_response(issue_api_token(user=user))


class RotateTokenView(APIView):
    """Issue a new token and revoke the one presented, in one step."""

    authentication_classes = [ExpiringTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: _TokenResponse})
    def post(self, request: Request) -> Response:
        return _token_response(rotate_api_token(token=_presented_token(request)))


class RevokeTokenView(APIView):
    """Revoke the presented token, or with ``{"all": true}`` every token of its user."""

    authentication_classes = [ExpiringTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=inline_serializer("TokenRevokeRequest", fields={"all": serializers.BooleanField(required=False)}),
        responses={200: inline_serializer("TokenRevokeResponse", fields={"revoked": serializers.IntegerField()})},
    )
    def post(self, request: Request) -> Response:
        token = _presented_token(request)
        body = request.data if isinstance(request.data, dict) else {}
        revoke_all = serializers.BooleanField().to_internal_value(body.get("all", False))
        if revoke_all:
            revoked = revoke_user_tokens(user=token.user, actor=token.user, reason="revoked_by_user")
        else:
            revoked = int(revoke_api_token(token=token, actor=token.user, reason="revoked_by_user"))
        return Response({"revoked": revoked})
